"""``POST .../serviceaccounts/<name>/token``: a TokenRequest (authentication.k8s.io/v1) answered with
a bound service-account token, as kube-apiserver's token subresource.

The node agent asks for its pods' tokens here (``boundObjectRef`` naming the pod), ``kubectl create
token`` asks for unbound ones. The rules are upstream's: ``expirationSeconds`` at least 10 minutes
(default one hour), audiences defaulting to the API's, the bound pod must exist with the given uid
and run as this ServiceAccount; a node (``system:node:<name>``) may only ask for a pod bound to it
(the NodeRestriction admission plugin's checks and wording). Without a signing key the server does
not serve the subresource at all (404), as kube-apiserver without ``--service-account-signing-key-file``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from nestlab.api import auth, status
from nestlab.api.kinds.common import as_dict
from nestlab.api.meta import json_response
from nestlab.api.resources import NODES, PODS, SERVICEACCOUNTS
from nestlab.api.satokens import Binding, Get, Ref, SigningKey, rfc3339
from nestlab.api.status import Cause

Obj = dict[str, Any]
SIGNER = web.AppKey("service-account-signer", SigningKey)
"""The app's signing key (set by ``server.build_app`` when it has one)."""
GROUP, VERSION, KIND = "authentication.k8s.io", "v1", "TokenRequest"
MIN_SECONDS = 600  # upstream ValidateTokenRequest: "may not specify a duration less than 10 minutes"
MAX_SECONDS = 2**32  # upstream: at most math.MaxUint32
DEFAULT_SECONDS = 3600  # upstream SetDefaults_TokenRequestSpec
NODE_PREFIX = "system:node:"
_TYPE = "FieldValueTypeInvalid"


def spec_of(name: str, body: Any, default_audiences: tuple[str, ...]) -> Obj:
    """The request's spec with upstream defaults; 400 for a body that is no TokenRequest, 422 for
    bad values."""
    request = {} if body is None else body
    if not isinstance(request, dict) or request.get("kind") not in (None, "", KIND):
        raise status.bad_request(f"the body must be a {KIND} ({GROUP}/{VERSION}) object")
    spec = dict(as_dict(request.get("spec")))
    seconds = spec.get("expirationSeconds")
    causes: list[Cause] = []
    if seconds is None:
        seconds = DEFAULT_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        causes.append(Cause("spec.expirationSeconds", "Invalid value: must be an integer", _TYPE))
    elif seconds < MIN_SECONDS:
        causes.append(
            Cause(
                "spec.expirationSeconds",
                f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
            )
        )
    elif seconds > MAX_SECONDS:
        causes.append(
            Cause(
                "spec.expirationSeconds",
                f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds",
            )
        )
    audiences = spec.get("audiences") or list(default_audiences)
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        causes.append(Cause("spec.audiences", "Invalid value: must be a list of non-empty strings"))
    ref = spec.get("boundObjectRef")
    if ref is not None and not isinstance(ref, dict):
        causes.append(Cause("spec.boundObjectRef", "Invalid value: must be an object", _TYPE))
    if causes:
        raise status.invalid(KIND, GROUP, name, causes)
    spec["expirationSeconds"], spec["audiences"] = seconds, audiences
    return spec


def node_restriction(user: auth.User, name: str, ref: Obj | None, pod: Obj | None) -> None:
    """Upstream NodeRestriction for a node's TokenRequest: bound to a pod scheduled on that node."""
    if auth.NODE_GROUP not in user.groups or not user.name.startswith(NODE_PREFIX):
        return

    def refuse(why: str) -> status.ApiError:
        return status.admission_forbidden(SERVICEACCOUNTS.plural, "", name, why)

    ref = ref or {}
    if ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
        raise refuse("node requested token not bound to a pod")
    if not ref.get("uid"):
        raise refuse("node requested token with a pod binding without a uid")
    if pod is None:
        raise status.not_found(PODS.plural, "", str(ref["name"]))
    if (pod.get("metadata") or {}).get("uid") != ref["uid"]:
        raise refuse(_uid_mismatch(str(ref["uid"])))
    if (pod.get("spec") or {}).get("nodeName") != user.name.removeprefix(NODE_PREFIX):
        raise refuse("node requested token bound to a pod scheduled on a different node")


def _uid_mismatch(uid: str) -> str:
    return (
        f"the UID in the bound object reference ({uid}) does not match the UID in record. "
        "The object might have been deleted and then recreated"
    )


async def _maybe(get: Get, resource: Any, namespace: str, name: str) -> Obj | None:
    try:
        return await get(resource, namespace, name)
    except status.ApiError as exc:
        if exc.code == 404:
            return None
        raise


async def create(
    get: Get, key: SigningKey, user: auth.User, namespace: str, name: str, *, body: Any, now: int
) -> Obj:
    """The answered TokenRequest (what kube-apiserver returns with 201)."""
    spec = spec_of(name, body, (key.issuer,))
    ref = spec.get("boundObjectRef")
    pod = None
    if ref is not None and ref.get("kind") == "Pod" and ref.get("name"):
        pod = await _maybe(get, PODS, namespace, str(ref["name"]))
    node_restriction(user, name, ref, pod)
    account = await get(SERVICEACCOUNTS, namespace, name)  # 404 `serviceaccounts "x" not found`
    binding = Binding(namespace, Ref(name, str(account["metadata"].get("uid", ""))))
    if ref is not None:
        binding = await _bound(get, binding, ref, pod)
    seconds = int(spec["expirationSeconds"])
    token = key.sign(binding, spec["audiences"], seconds, now)
    return {
        "kind": KIND,
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": rfc3339(now + seconds)},
    }


async def _bound(get: Get, binding: Binding, ref: Obj, pod: Obj | None) -> Binding:
    """``binding`` bound to the pod ``ref`` names (and the pod's node), with upstream's refusals."""
    kind, version, ref_name = ref.get("kind", ""), ref.get("apiVersion", ""), str(ref.get("name", ""))
    if kind != "Pod" or version != "v1":
        group, _, plain = str(version).rpartition("/")
        raise status.bad_request(f"cannot bind token to object of type {group}/{plain}, Kind={kind}")
    if pod is None:
        raise status.not_found(PODS.plural, "", ref_name)
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    if spec.get("serviceAccountName", "") != binding.account.name:
        raise status.bad_request(
            f'cannot bind token for serviceaccount "{binding.account.name}" to pod running with '
            "different serviceaccount name."
        )
    uid = str(meta.get("uid", ""))
    if ref.get("uid") and ref["uid"] != uid:
        raise status.conflict("Pod", "", ref_name, _uid_mismatch(str(ref["uid"])))
    ref["uid"] = uid
    node = None
    if spec.get("nodeName"):
        found = await _maybe(get, NODES, "", str(spec["nodeName"]))
        if found is not None:
            node = Ref(str(spec["nodeName"]), str(found["metadata"].get("uid", "")))
    return Binding(binding.namespace, binding.account, Ref(ref_name, uid), node)


async def serve(
    request: web.Request, get: Get, user: auth.User, namespace: str, name: str, *, body: Any
) -> web.Response:
    """The HTTP side (``body`` decoded by the handler: JSON, YAML or protobuf): POST only; 404 when
    this server has no signing key."""
    key = request.app.get(SIGNER)
    if key is None:
        raise status.path_not_found()
    if request.method != "POST":
        raise status.method_not_allowed(request.method, "serviceaccounts/token")
    answer = await create(get, key, user, namespace, name, body=body, now=int(time.time()))
    return json_response(answer, 201)
