"""v1 ServiceAccount: the identity a pod calls the API with.

A pod names a ServiceAccount (``default`` unless it says otherwise, see
:mod:`nestlab.api.saadmission`); the node agent asks the ``token`` subresource for a short-lived
token bound to the pod (a TokenRequest, :mod:`nestlab.api.tokenrequest`) and projects it into the
pod at ``/var/run/secrets/kubernetes.io/serviceaccount``; the API server verifies it on each call
(:mod:`nestlab.api.satokens`) and RoleBindings naming the ServiceAccount decide what it may do.
The object itself holds little: upstream's ``ValidateServiceAccount`` checks metadata only, and the
legacy ``secrets`` list is kept as given (nestlab never makes long-lived token Secrets, as upstream
since 1.24). ``imagePullSecrets`` is refused unless empty: the node agent pulls from the depot with
the namespace's registry-project credentials, so nothing would ever read it.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds.base import AGE, NAME, READ, WRITE, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_list, check_metadata, type_causes
from nestlab.api.kinds.printing import created
from nestlab.api.kinds.wiremeta import OBJECT_META, Schema
from nestlab.api.status import Cause

RESOURCE = Resource(
    "serviceaccounts", "serviceaccount", "ServiceAccount", "", "v1", True, ("sa",), subresources=("token",)
)
DEFAULT_NAME = "default"
"""The ServiceAccount a pod runs as when it names none (upstream ``DefaultServiceAccountName``)."""

# -- protobuf (k8s.io/api core/v1 generated.proto, messages ServiceAccount, ObjectReference) -------
OBJECT_REFERENCE: Schema = {
    1: ("kind", "str"),
    2: ("namespace", "str"),
    3: ("name", "str"),
    4: ("uid", "str"),
    5: ("apiVersion", "str"),
    6: ("resourceVersion", "str"),
    7: ("fieldPath", "str"),
}
SERVICE_ACCOUNT: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("secrets", ("list", OBJECT_REFERENCE)),
    3: ("imagePullSecrets", ("list", {1: ("name", "str")})),
    4: ("automountServiceAccountToken", "bool"),
}

# k8s.io/api authentication/v1 generated.proto: the body of POST serviceaccounts/<name>/token, which
# client-go (kubectl create token, kubelets) sends as protobuf.
TOKEN_REQUEST: Schema = {
    1: ("metadata", OBJECT_META),
    2: (
        "spec",
        {
            1: ("audiences", "strs"),
            3: (
                "boundObjectRef",
                {1: ("kind", "str"), 2: ("apiVersion", "str"), 3: ("name", "str"), 4: ("uid", "str")},
            ),
            4: ("expirationSeconds", "int"),
        },
    ),
    3: ("status", {1: ("token", "str"), 2: ("expirationTimestamp", "time")}),
}


PULL_SECRETS_MSG = (
    "Forbidden: nestlab does not implement imagePullSecrets: the depot registry's project "
    "credentials are handled by the node agent, so pods need no pull secret (a pod's own "
    "imagePullSecrets is refused too; docs/tenancy.md, Registry projects)"
)


def validate(account: Obj) -> list[Cause]:
    """Upstream ``ValidateServiceAccount``: metadata, plus the JSON types of the three fields; a
    non-empty ``imagePullSecrets`` is refused rather than stored and never used (the agent pulls
    from the depot with the namespace's project credentials, as a pod's own is refused)."""
    causes = check_metadata(account)
    causes += type_causes(
        account, {"secrets": list, "imagePullSecrets": list, "automountServiceAccountToken": bool}
    )
    if isinstance(account.get("imagePullSecrets"), list) and account["imagePullSecrets"]:
        causes.append(Cause("imagePullSecrets", PULL_SECRETS_MSG, "FieldValueForbidden"))
    return causes


def row(account: Obj) -> list[Any]:
    """``kubectl get serviceaccounts``: NAME SECRETS AGE (SECRETS counts the legacy secret list)."""
    return [account["metadata"]["name"], len(as_list(account.get("secrets"))), created(account)]


KIND = Kind(
    RESOURCE,
    model="V1ServiceAccount",
    validate=validate,
    columns=(
        NAME,
        Column(
            "Secrets",
            "string",
            0,
            "Secrets is a list of the secrets in the same namespace that pods running using this "
            "ServiceAccount are allowed to use.",
        ),
        AGE,
    ),
    row=row,
    roles={
        # upstream bootstrap policy: view reads them; edit writes them, impersonates them and
        # creates their tokens (system:aggregate-to-edit); node agents read the ServiceAccount of
        # their pods and request tokens bound to them (Node authorizer + NodeRestriction).
        "view": {"serviceaccounts": READ},
        "edit": {
            "serviceaccounts": READ | WRITE | {"impersonate"},
            "serviceaccounts/token": frozenset({"create"}),
        },
        "node": {"serviceaccounts": frozenset({"get"}), "serviceaccounts/token": frozenset({"create"})},
    },
    protobuf=SERVICE_ACCOUNT,
)
