"""rbac.authorization.k8s.io/v1 ClusterRoleBinding: who holds a ClusterRole everywhere.

Lab administrators hold ``cluster-admin`` through the binding of the same name (groups
``system:masters`` and ``nestlab:admins``); every authenticated user holds ``system:basic-user``,
``system:discovery`` and ``system:public-info-viewer`` (:mod:`nestlab.api.bootstraproles`). A
ClusterRoleBinding grants only ClusterRoles, and a ServiceAccount subject must name its namespace
(there is no binding namespace to default to). Validation is upstream ValidateClusterRoleBinding.
"""

from __future__ import annotations

from nestlab.api.kinds import rbac
from nestlab.api.kinds.base import Kind, Obj, Resource
from nestlab.api.status import Cause

RESOURCE = Resource(
    "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", rbac.GROUP, "v1", False
)


def validate(binding: Obj) -> list[Cause]:
    """Upstream ValidateClusterRoleBinding."""
    return rbac.check_binding(binding, ("ClusterRole",), namespaced=False)


KIND = Kind(
    RESOURCE,
    model="V1ClusterRoleBinding",
    default=rbac.default_binding,
    validate=validate,
    validate_update=rbac.check_binding_update,
    columns=rbac.binding_columns("clusterRoleBinding"),
    row=rbac.binding_row,
    protobuf=rbac.BINDING,
)
