"""apps/v1 StatefulSet: pods with stable names (web-0, web-1...) that come back under the same name.

When a host fails, ``web-1`` is recreated on another host as ``web-1``: the identity follows the
name, not the VM. Its ``volumeClaimTemplates`` give each ordinal its own claim on the lab datastore
(``data-web-1``), created by the controller before the pod and kept when the pod or the set goes
(the Retain/Retain retention policy, upstream's default; the Delete policies are refused by name
until the controller deletes claims). Upstream accepts any claim template and fails later, when
the claim is created; the lab checks each one as a claim (access modes, storage) and the pod
template with the claims' volumes in it, so a mistake is reported where it was made.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds import persistentvolumeclaim, podspec, wire, workload
from nestlab.api.kinds.base import AGE, NAME, Column, Kind, Obj, Resource, Scale
from nestlab.api.kinds.common import (
    as_dict,
    as_list,
    check_metadata,
    check_name,
    check_nonnegative,
    check_status,
)
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource(
    "statefulsets",
    "statefulset",
    "StatefulSet",
    "apps",
    "v1",
    True,
    ("sts",),
    ("status", "scale"),
    True,
    ("all",),
)
POLICIES = ("OrderedReady", "Parallel")
RETENTION = ("Retain", "Delete")
UPDATES = ("RollingUpdate", "OnDelete")
_UPDATABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
    "revisionHistoryLimit",
)


def default(statefulset: Obj) -> None:
    spec = statefulset.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate" and isinstance(strategy.setdefault("rollingUpdate", {}), dict):
            strategy["rollingUpdate"].setdefault("partition", 0)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    retention = spec["persistentVolumeClaimRetentionPolicy"]
    if isinstance(retention, dict):
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
    podspec.default_template(spec.get("template"))
    for claim in as_list(spec.get("volumeClaimTemplates")):
        if isinstance(claim, dict):  # upstream defaults the templates as claims
            claim.setdefault("apiVersion", "v1")
            claim.setdefault("kind", "PersistentVolumeClaim")
            persistentvolumeclaim.default(claim)


def _supported(value: Any, allowed: tuple[str, ...], path: str) -> list[Cause]:
    if value in allowed:
        return []
    supported = ", ".join(f'"{v}"' for v in allowed)
    return [
        Cause(path, f'Unsupported value: "{value}": supported values: {supported}', "FieldValueNotSupported")
    ]


def validate(statefulset: Obj) -> list[Cause]:
    causes = check_metadata(statefulset) + check_status(statefulset)
    spec = statefulset.get("spec")
    if not isinstance(spec, dict):
        return [*causes, Cause("spec", "Required value", "FieldValueRequired")]
    if not spec.get("serviceName") or not isinstance(spec.get("serviceName"), str):
        causes.append(Cause("spec.serviceName", "Required value", "FieldValueRequired"))
    causes += check_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    causes += _supported(spec.get("podManagementPolicy"), POLICIES, "spec.podManagementPolicy")
    strategy = as_dict(spec.get("updateStrategy"))
    causes += _supported(strategy.get("type"), UPDATES, "spec.updateStrategy.type")
    rolling = as_dict(strategy.get("rollingUpdate"))
    causes += check_nonnegative(rolling.get("partition"), "spec.updateStrategy.rollingUpdate.partition")
    causes += _check_retention(spec.get("persistentVolumeClaimRetentionPolicy"))
    claims = spec.get("volumeClaimTemplates")
    if claims is not None and not isinstance(claims, list):
        message = "Invalid value: must be a list"
        return [*causes, Cause("spec.volumeClaimTemplates", message, "FieldValueTypeInvalid")]
    names: set[str] = set()
    for index, claim in enumerate(as_list(claims)):
        causes += _check_claim_template(claim, f"spec.volumeClaimTemplates[{index}]", names)
    set_name = str(as_dict(statefulset.get("metadata")).get("name") or "set")
    return causes + workload.check_replicated(with_claims(spec, "0", set_name), "statefulset")


def _check_retention(policy: Any) -> list[Cause]:
    """Only upstream's default, Retain/Retain: the controller never deletes claims (yet)."""
    causes: list[Cause] = []
    for when in ("whenDeleted", "whenScaled"):
        value = as_dict(policy).get(when)
        path = f"spec.persistentVolumeClaimRetentionPolicy.{when}"
        if value == "Delete":
            message = (
                f"Forbidden: nestlab does not implement {when}: Delete yet: the StatefulSet controller "
                "keeps every claim it created (Retain); delete claims yourself"
            )
            causes.append(Cause(path, message, "FieldValueForbidden"))
        elif value is not None:
            causes += _supported(value, RETENTION, path)
    return causes


def _check_claim_template(claim: Any, path: str, names: set[str]) -> list[Cause]:
    if not isinstance(claim, dict):
        return [Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    name = as_dict(claim.get("metadata")).get("name")
    if not name or not isinstance(name, str):
        return [Cause(f"{path}.metadata.name", "Required value", "FieldValueRequired")]
    causes = check_name(name, path=f"{path}.metadata.name")
    if name in names:
        causes.append(Cause(f"{path}.metadata.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
    names.add(name)
    return causes + persistentvolumeclaim.check_spec(claim.get("spec"), f"{path}.spec")


def claim_name(template: str, set_name: str, ordinal: str) -> str:
    """The claim of one ordinal (upstream getPersistentVolumeClaimName): ``data-web-0``."""
    return f"{template}-{set_name}-{ordinal}"


def claim_volumes(spec: Obj, volumes: Any, set_name: str, ordinal: str) -> list[Obj] | None:
    """A pod's ``volumes`` with one volume per claim template naming that ordinal's claim, replacing
    a volume of the same name (upstream updateStorage); None when the set has no claim templates."""
    claims = [c for c in as_list(spec.get("volumeClaimTemplates")) if isinstance(c, dict)]
    if not claims:
        return None
    names = [str(as_dict(c.get("metadata")).get("name", "")) for c in claims]
    kept = [v for v in as_list(volumes) if as_dict(v).get("name") not in names]
    return kept + [
        {"name": n, "persistentVolumeClaim": {"claimName": claim_name(n, set_name, ordinal)}} for n in names
    ]


def with_claims(spec: Obj, ordinal: str, set_name: str) -> Obj:
    """``spec`` whose pod template's volumes are those of ordinal ``ordinal`` (see :func:`claim_volumes`)."""
    template = spec.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return spec
    pod_spec = template["spec"]
    volumes = claim_volumes(spec, pod_spec.get("volumes"), set_name, ordinal)
    if volumes is None:
        return spec
    return {**spec, "template": {**template, "spec": {**pod_spec, "volumes": volumes}}}


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    new_spec, old_spec = dict(as_dict(new.get("spec"))), dict(as_dict(old.get("spec")))
    for spec in (new_spec, old_spec):
        for key in _UPDATABLE:
            spec.pop(key, None)
    if new_spec == old_spec:
        return []
    message = (
        "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
        "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden"
    )
    return [Cause("spec", message, "FieldValueForbidden")]


def row(obj: Obj) -> list[Any]:
    cells = workload.template_cells(obj)
    return [
        obj["metadata"]["name"],
        f"{workload.count(obj, 'readyReplicas')}/{workload.desired(obj)}",
        created(obj),
        cells[0],
        cells[1],
    ]


KIND = Kind(
    RESOURCE,
    model="V1StatefulSet",
    default=default,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column("Ready", "string", 0, "Number of the pod with ready state"),
        AGE,
        Column("Containers", "string", 1, "Names of each container in the template."),
        Column("Images", "string", 1, "Images referenced by each container in the template."),
    ),
    row=row,
    roles=workload.roles("statefulsets"),
    generation=True,
    scale=Scale(workload.selector_text),
    protobuf=wire.top(wire.STATEFUL_SET_SPEC),
)
