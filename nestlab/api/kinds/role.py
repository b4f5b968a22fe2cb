"""rbac.authorization.k8s.io/v1 Role: a set of permissions inside one namespace.

A vSphere Namespace's view/edit/admin are ClusterRoles bound in the namespace; a Role is how a
namespace administrator grants something narrower (read the pods' logs, restart one Deployment)
without a lab administrator. Its rules are upstream PolicyRules (:mod:`nestlab.api.rbacrules` says
what they allow); a namespaced rule never names non-resource URLs. Creating or changing one is also
subject to escalation prevention (:mod:`nestlab.api.escalation`): nobody grants what they lack.
"""

from __future__ import annotations

from nestlab.api.kinds import rbac
from nestlab.api.kinds.base import READ, WRITE, Kind, Obj, Resource
from nestlab.api.status import Cause

RESOURCE = Resource("roles", "role", "Role", rbac.GROUP, "v1", True)


def validate(role: Obj) -> list[Cause]:
    """Upstream ValidateRole."""
    return rbac.check_rbac_metadata(role) + rbac.check_rules(role, namespaced=True)


KIND = Kind(
    RESOURCE,
    model="V1Role",
    validate=validate,
    columns=rbac.ROLE_COLUMNS,
    row=rbac.role_row,
    roles={"admin": {"roles": READ | WRITE}},  # upstream's admin manages the namespace's roles
    protobuf=rbac.ROLE,
)
