"""v1 PersistentVolumeClaim: a namespace's request for a volume from the lab datastore.

In vSphere with Kubernetes a claim becomes a CNS block volume (a First Class Disk on a datastore)
attached to the ESXi host that runs the pod. Here the provisioner controller creates the volume on
the lab datastore and binds the claim (``spec.volumeName``, status ``Bound``); the attacher and the
node agent give it to the pod's VM. The unit holds what kube-apiserver does with the object itself:
defaults (``volumeMode: Filesystem``, phase ``Pending``), validation (pkg/apis/core/validation
``ValidatePersistentVolumeClaim`` and ``...Update``: a claim is immutable but for its storage request
once bound, and a request never shrinks) and the ``kubectl get pvc`` columns. The default class
and the quota charge need the store, so they are admission (:mod:`nestlab.api.storageclasses`,
:mod:`nestlab.api.quota`), as upstream's DefaultStorageClass and ResourceQuota plugins are.

What the lab datastore cannot do is refused by name, never stored and ignored: shared access modes
(it serves a volume to one host at a time, like CNS block volumes), raw block mode, data sources
(no snapshots or clones), label selectors (claims bind by provisioning or ``volumeName``) and
volume attributes classes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nestlab.api import quantity
from nestlab.api.kinds.base import AGE, NAME, READ, WRITE, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import (
    DNS1123_SUBDOMAIN,
    SUBDOMAIN_MSG,
    as_dict,
    as_list,
    check_metadata,
    quantities,
    type_causes,
)
from nestlab.api.kinds.printing import created
from nestlab.api.kinds.wiremeta import IGNORE, LABEL_SELECTOR, OBJECT_META, Schema
from nestlab.api.status import Cause

RESOURCE = Resource(
    "persistentvolumeclaims",
    "persistentvolumeclaim",
    "PersistentVolumeClaim",
    "",
    "v1",
    True,
    ("pvc",),
    ("status",),
    True,
)
RWO, ROX, RWX, RWOP = "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"
ACCESS_MODES = (ROX, RWX, RWO, RWOP)
"""Upstream's supported modes, in the (sorted) order its NotSupported message lists them."""
SHORT_MODES = ((RWO, "RWO"), (ROX, "ROX"), (RWX, "RWX"), (RWOP, "RWOP"))
"""How kubectl abbreviates access modes, in upstream's order (helper.GetAccessModesAsString)."""
VOLUME_MODES = ("Block", "Filesystem")
SELECTED_NODE = "volume.kubernetes.io/selected-node"
"""Set by the scheduler on a WaitForFirstConsumer claim when its first pod is bound: the provisioner
creates the volume only then (upstream's annotation name)."""
BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
"""The annotation that named a claim's class before ``spec.storageClassName``; still read upstream."""
PENDING, BOUND, LOST = "Pending", "Bound", "Lost"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
"""The finalizer holding a claim that pods still use (upstream volumeutil.PVCProtectionFinalizer)."""
SHARED_MSG = (
    "Forbidden: {mode} is not supported by this lab: the lab datastore attaches a volume to one host "
    "at a time (vSphere CNS block volumes are ReadWriteOnce too); use ReadWriteOnce or ReadWriteOncePod"
)
_NOT_YET = {
    "selector": "claims bind to a volume the provisioner creates, or to the one spec.volumeName names",
    "dataSource": "the lab datastore has no snapshots or clones to fill a volume from",
    "dataSourceRef": "the lab datastore has no snapshots or clones to fill a volume from",
    "volumeAttributesClassName": "the lab datastore has no volume attributes to modify",
}
IMMUTABLE_SPEC_MSG = (
    "Forbidden: spec is immutable after creation except resources.requests and "
    "volumeAttributesClassName for bound claims"
)


def class_of(claim: Obj) -> str:
    """The claim's class (upstream GetPersistentVolumeClaimClass: the beta annotation wins); "" if none."""
    annotations = as_dict(as_dict(claim.get("metadata")).get("annotations"))
    if BETA_CLASS in annotations:
        return str(annotations[BETA_CLASS])
    return str(as_dict(claim.get("spec")).get("storageClassName") or "")


def storage_request(claim: Obj) -> Decimal:
    """``spec.resources.requests.storage`` in bytes (0 when absent or unreadable)."""
    requests = as_dict(as_dict(as_dict(claim.get("spec")).get("resources")).get("requests"))
    try:
        return quantity.parse(requests["storage"]) if "storage" in requests else Decimal(0)
    except quantity.QuantityError:
        return Decimal(0)


def modes_text(modes: Any) -> str:
    """Access modes as kubectl shows them (``RWO,RWOP``)."""
    present = set(as_list(modes))
    return ",".join(short for mode, short in SHORT_MODES if mode in present)


def default(claim: Obj) -> None:
    """Upstream SetDefaults_PersistentVolumeClaim(+Spec): Filesystem mode, phase Pending."""
    spec = claim.get("spec")
    if isinstance(spec, dict) and spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    state = claim.get("status")
    if state is None:
        state = claim["status"] = {}
    if isinstance(state, dict) and not state.get("phase"):
        state["phase"] = PENDING


def on_create(claim: Obj) -> None:
    """A new claim is Pending, whatever status the client sent: binding is the provisioner's. It
    carries the ``kubernetes.io/pvc-protection`` finalizer, as upstream's StorageObjectInUseProtection
    admission plugin adds it: a claim deleted while a pod uses it stays Terminating until the
    pvc-protection controller (:mod:`nestlab.controller.pvcprotection`) sees no pod using it."""
    claim["status"] = {"phase": PENDING}
    meta = claim["metadata"]
    if meta.get("finalizers") is None:
        meta["finalizers"] = []
    finalizers = meta["finalizers"]
    if isinstance(finalizers, list) and PVC_PROTECTION not in finalizers:  # else: validation's 422
        finalizers.append(PVC_PROTECTION)


def check_access_modes(modes: Any, path: str) -> list[Cause]:
    """Upstream's access-mode rules, then the lab's: one host at a time."""
    if not modes:
        return [Cause(path, "Required value: at least 1 access mode is required", "FieldValueRequired")]
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
        return [Cause(path, "Invalid value: must be a list of strings", "FieldValueTypeInvalid")]
    causes = []
    supported = ", ".join(f'"{m}"' for m in ACCESS_MODES)
    for mode in modes:
        if mode not in ACCESS_MODES:
            message = f'Unsupported value: "{mode}": supported values: {supported}'
            causes.append(Cause(path, message, "FieldValueNotSupported"))
    if RWOP in modes and any(m in ACCESS_MODES and m != RWOP for m in modes):
        message = "Forbidden: may not use ReadWriteOncePod with other access modes"
        causes.append(Cause(path, message, "FieldValueForbidden"))
    for mode in dict.fromkeys(m for m in modes if m in (RWX, ROX)):
        causes.append(Cause(path, SHARED_MSG.format(mode=mode), "FieldValueForbidden"))
    return causes


def check_class_name(name: Any, path: str) -> list[Cause]:
    """A class name, when one is given, is a DNS subdomain (upstream ValidateClassName)."""
    if not name:
        return []
    if not isinstance(name, str):
        return [Cause(path, "Invalid value: must be a string", "FieldValueTypeInvalid")]
    if len(name) > 253:
        return [Cause(path, f'Invalid value: "{name}": must be no more than 253 characters')]
    if not DNS1123_SUBDOMAIN.match(name):
        return [Cause(path, f'Invalid value: "{name}": {SUBDOMAIN_MSG}')]
    return []


def check_volume_mode(mode: Any, path: str) -> list[Cause]:
    if mode is None or mode == "Filesystem":
        return []
    if mode == "Block":
        message = (
            "Forbidden: nestlab does not implement raw block volumes yet: pod-init mounts every claim "
            "as a filesystem; use volumeMode Filesystem"
        )
        return [Cause(path, message, "FieldValueForbidden")]
    supported = ", ".join(f'"{m}"' for m in VOLUME_MODES)
    return [
        Cause(path, f'Unsupported value: "{mode}": supported values: {supported}', "FieldValueNotSupported")
    ]


def check_storage(requests: Any, path: str) -> list[Cause]:
    """``storage`` is required and positive (upstream ValidatePositiveQuantityValue)."""
    requests = as_dict(requests)
    if "storage" not in requests:
        return [Cause(f"{path}[storage]", "Required value", "FieldValueRequired")]
    value = requests["storage"]
    try:
        parsed = quantity.parse(value)
    except quantity.QuantityError as exc:
        return [Cause(f"{path}[storage]", f'Invalid value: "{value}": {exc}')]
    if parsed <= 0:
        return [Cause(f"{path}[storage]", f'Invalid value: "{value}": must be greater than zero')]
    return []


def check_spec(spec: Any, path: str = "spec") -> list[Cause]:
    """Upstream ValidatePersistentVolumeClaimSpec and the lab's refusals (shared with StatefulSet
    volumeClaimTemplates, which upstream validates with the same function)."""
    if not isinstance(spec, dict):
        return [Cause(path, "Required value", "FieldValueRequired")]
    kinds = {"volumeName": str, "storageClassName": str, "volumeMode": str, "resources": dict}
    causes = type_causes(spec, kinds, f"{path}.")
    if causes:
        return causes
    causes += check_access_modes(spec.get("accessModes"), f"{path}.accessModes")
    resources = as_dict(spec.get("resources"))
    causes += type_causes(resources, {"requests": dict, "limits": dict}, f"{path}.resources.")
    causes += quantities(resources.get("limits"), f"{path}.resources.limits")
    causes += check_storage(resources.get("requests"), f"{path}.resources")
    causes += check_class_name(spec.get("storageClassName"), f"{path}.storageClassName")
    causes += check_volume_mode(spec.get("volumeMode"), f"{path}.volumeMode")
    for name, why in _NOT_YET.items():
        if spec.get(name):
            message = f"Forbidden: nestlab does not implement {name} yet: {why}"
            causes.append(Cause(f"{path}.{name}", message, "FieldValueForbidden"))
    return causes


def _check_status(claim: Obj) -> list[Cause]:
    state = claim.get("status")
    if state is None:
        return []
    if not isinstance(state, dict):
        return [Cause("status", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    kinds = {"phase": str, "accessModes": list, "capacity": dict, "conditions": list}
    causes = type_causes(state, kinds, "status.")
    phase = state.get("phase")
    if isinstance(phase, str) and phase not in (PENDING, BOUND, LOST):
        message = f'Unsupported value: "{phase}": supported values: "Bound", "Lost", "Pending"'
        causes.append(Cause("status.phase", message, "FieldValueNotSupported"))
    return causes + quantities(state.get("capacity"), "status.capacity")


def validate(claim: Obj) -> list[Cause]:
    """Upstream ValidatePersistentVolumeClaim: metadata, the spec, the status the controller writes."""
    return check_metadata(claim) + check_spec(claim.get("spec")) + _check_status(claim)


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    """Upstream ValidatePersistentVolumeClaimUpdate (the controllers bind through the same rules)."""
    new_spec, old_spec = dict(as_dict(new.get("spec"))), dict(as_dict(old.get("spec")))
    if not old_spec.get("volumeName"):  # binding sets it once
        old_spec.pop("volumeName", None)
        new_volume = new_spec.pop("volumeName", None)
        if new_volume:
            old_spec["volumeName"] = new_spec["volumeName"] = new_volume
    if old_spec.get("storageClassName") is None and new_spec.get("storageClassName") is not None:
        old_spec["storageClassName"] = new_spec["storageClassName"]  # upstream: retroactive default class
    if as_dict(new.get("status")).get("phase") == BOUND:
        new_resources = dict(as_dict(new_spec.get("resources")))
        new_requests = dict(as_dict(new_resources.get("requests")))
        old_storage = as_dict(as_dict(old_spec.get("resources")).get("requests")).get("storage")
        if old_storage is None:
            new_requests.pop("storage", None)
        else:
            new_requests["storage"] = old_storage
        new_resources["requests"] = new_requests
        new_spec["resources"] = new_resources
    causes = []
    if new_spec != old_spec:
        causes.append(Cause("spec", IMMUTABLE_SPEC_MSG, "FieldValueForbidden"))
    if storage_request(new) < storage_request(old):
        message = "Forbidden: field can not be less than previous value"
        causes.append(Cause("spec.resources.requests.storage", message, "FieldValueForbidden"))
    return causes


def row(claim: Obj) -> list[Any]:
    """printPersistentVolumeClaim (1.29+: with VolumeAttributesClass)."""
    meta, spec, state = claim["metadata"], as_dict(claim.get("spec")), as_dict(claim.get("status"))
    phase = "Terminating" if meta.get("deletionTimestamp") else state.get("phase", "")
    volume = spec.get("volumeName") or ""
    capacity = str(as_dict(state.get("capacity")).get("storage", "")) if volume else ""
    modes = modes_text(state.get("accessModes")) if volume else ""
    return [
        meta["name"],
        phase,
        volume,
        capacity,
        modes,
        class_of(claim),
        spec.get("volumeAttributesClassName") or "<unset>",
        created(claim),
        spec.get("volumeMode") or "<unset>",
    ]


# -- protobuf (k8s.io/api core/v1 generated.proto) ------------------------------------------------
_TYPED_REFERENCE: Schema = {
    1: ("apiGroup", "str"),
    2: ("kind", "str"),
    3: ("name", "str"),
    4: ("namespace", "str"),
}
SPEC: Schema = {
    1: ("accessModes", "strs"),
    2: ("resources", {1: ("limits", "qmap"), 2: ("requests", "qmap")}),
    3: ("volumeName", "str"),
    4: ("selector", LABEL_SELECTOR),
    5: ("storageClassName", "str"),
    6: ("volumeMode", "str"),
    7: ("dataSource", _TYPED_REFERENCE),
    8: ("dataSourceRef", _TYPED_REFERENCE),
    9: ("volumeAttributesClassName", "str"),
}
PROTOBUF: Schema = {1: ("metadata", OBJECT_META), 2: ("spec", SPEC), 3: ("status", IGNORE)}

KIND = Kind(
    RESOURCE,
    model="V1PersistentVolumeClaim",
    default=default,
    on_create=on_create,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column("Status", "string", 0, "phase represents the current phase of PersistentVolumeClaim."),
        Column(
            "Volume",
            "string",
            0,
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        Column("Capacity", "string", 0, "capacity represents the actual resources of the underlying volume."),
        Column(
            "Access Modes",
            "string",
            0,
            "accessModes contains the actual access modes the volume backing the PVC has.",
        ),
        Column("StorageClass", "string", 0, "StorageClass of the pvc"),
        Column("VolumeAttributesClass", "string", 0, "VolumeAttributesClass of the pvc"),
        AGE,
        Column("VolumeMode", "string", 1, "volumeMode defines what type of volume is required by the claim."),
    ),
    row=row,
    roles={
        "view": {"persistentvolumeclaims": READ, "persistentvolumeclaims/status": READ},
        "edit": {"persistentvolumeclaims": READ | WRITE},
        "node": {"persistentvolumeclaims": READ},
    },
    protobuf=PROTOBUF,
)
