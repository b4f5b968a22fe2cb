"""v1 PersistentVolume: one volume on the lab datastore, as the cluster sees it.

vSphere with Kubernetes shows each CNS volume as a PersistentVolume whose source is the vSphere CSI
driver; here every volume lives on the lab datastore, so the only source a PersistentVolume may have
is ``csi`` with driver ``datastore.nestlab.io`` and the datastore's volume id as ``volumeHandle``.
Any other source (nfs, hostPath, iscsi...) is refused naming the field, rather than stored for a
volume no host could ever attach. The provisioner controller creates ``pvc-<claim uid>`` volumes and
writes their phase through ``persistentvolumes/status``; an administrator may also create one by
hand for an existing datastore volume. Validation and the columns follow upstream
(``ValidatePersistentVolume``, ``...Update``: the source never changes; printers.go).
"""

from __future__ import annotations

from typing import Any

from nestlab.api import quantity
from nestlab.api.kinds.base import AGE, NAME, READ, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, check_metadata, check_name, quantities, type_causes
from nestlab.api.kinds.persistentvolumeclaim import (
    check_access_modes,
    check_class_name,
    check_volume_mode,
    modes_text,
)
from nestlab.api.kinds.printing import created
from nestlab.api.kinds.storageclass import PROVISIONER
from nestlab.api.status import Cause

RESOURCE = Resource(
    "persistentvolumes", "persistentvolume", "PersistentVolume", "", "v1", False, ("pv",), ("status",), True
)
DRIVER = PROVISIONER
"""The only CSI driver a volume may name: the lab datastore's."""
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
PHASES = ("Available", "Bound", "Failed", "Pending", "Released")
SOURCES = (
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
)
"""Upstream's PersistentVolumeSource members (JSON names)."""
_NOT_YET = {
    "nodeAffinity": "the lab datastore reaches every host, so a volume is never tied to some of them",
    "mountOptions": "pod-init mounts every volume with its own options",
    "volumeAttributesClassName": "the lab datastore has no volume attributes to modify",
}


def default(volume: Obj) -> None:
    """Upstream SetDefaults_PersistentVolume: Retain, Filesystem, phase Pending."""
    spec = volume.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
    state = volume.get("status")
    if state is None:
        state = volume["status"] = {}
    if isinstance(state, dict) and not state.get("phase"):
        state["phase"] = "Pending"


def on_create(volume: Obj) -> None:
    """A new volume is Pending; its phase is the controller's to write (persistentvolumes/status)."""
    volume["status"] = {"phase": "Pending"}


def _check_capacity(capacity: Any) -> list[Cause]:
    if not capacity:
        return [Cause("spec.capacity", "Required value", "FieldValueRequired")]
    if not isinstance(capacity, dict):
        return [Cause("spec.capacity", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    if "storage" not in capacity or len(capacity) > 1:
        shown = ", ".join(f"{k}: {v}" for k, v in capacity.items())
        message = f'Unsupported value: "map[{shown}]": supported values: "storage"'
        return [Cause("spec.capacity", message, "FieldValueNotSupported")]
    causes = quantities(capacity, "spec.capacity")
    if not causes and quantity.parse(capacity["storage"]) <= 0:
        message = f'Invalid value: "{capacity["storage"]}": must be greater than zero'
        causes.append(Cause("spec.capacity[storage]", message))
    return causes


def _check_csi(csi: Any) -> list[Cause]:
    if not isinstance(csi, dict):
        return [Cause("spec.csi", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = type_causes(
        csi, {"driver": str, "volumeHandle": str, "fsType": str, "readOnly": bool}, "spec.csi."
    )
    if causes:
        return causes
    driver = csi.get("driver")
    if not driver:
        causes.append(Cause("spec.csi.driver", "Required value", "FieldValueRequired"))
    elif driver != DRIVER:
        message = (
            f'Forbidden: the lab has one datastore, whose CSI driver is "{DRIVER}": a volume of driver '
            f'"{driver}" could never be attached'
        )
        causes.append(Cause("spec.csi.driver", message, "FieldValueForbidden"))
    if not csi.get("volumeHandle"):
        causes.append(Cause("spec.csi.volumeHandle", "Required value", "FieldValueRequired"))
    fs_type = csi.get("fsType")
    if fs_type not in (None, "", "ext4"):
        message = f'Forbidden: the lab datastore formats volumes as ext4, not "{fs_type}"'
        causes.append(Cause("spec.csi.fsType", message, "FieldValueForbidden"))
    for name in ("controllerPublishSecretRef", "nodeStageSecretRef", "nodePublishSecretRef",
                 "controllerExpandSecretRef", "nodeExpandSecretRef"):  # fmt: skip
        if csi.get(name):
            message = f"Forbidden: nestlab does not implement {name} yet: the lab datastore takes no secrets"
            causes.append(Cause(f"spec.csi.{name}", message, "FieldValueForbidden"))
    return causes


def _check_source(spec: Obj) -> list[Cause]:
    """Exactly one source (upstream), and it must be the lab datastore's CSI driver (the lab)."""
    present = [name for name in SOURCES if spec.get(name) is not None]
    if not present:
        return [Cause("spec", "Required value: must specify a volume type", "FieldValueRequired")]
    causes = [
        Cause(f"spec.{name}", "Forbidden: may not specify more than 1 volume type", "FieldValueForbidden")
        for name in present[1:]
    ]
    for name in present:
        if name != "csi":
            message = (
                f"Forbidden: nestlab does not implement {name} volumes: every volume lives on the lab "
                f'datastore; use csi with driver "{DRIVER}"'
            )
            causes.append(Cause(f"spec.{name}", message, "FieldValueForbidden"))
    if "csi" in present:
        causes += _check_csi(spec["csi"])
    return causes


def _check_claim_ref(ref: Any) -> list[Cause]:
    if ref is None:
        return []
    if not isinstance(ref, dict):
        return [Cause("spec.claimRef", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = type_causes(ref, {"name": str, "namespace": str, "uid": str}, "spec.claimRef.")
    if not causes and ref.get("name"):
        causes += check_name(str(ref["name"]), path="spec.claimRef.name")
    return causes


def validate(volume: Obj) -> list[Cause]:
    """Upstream ValidatePersistentVolume with the lab's one datastore."""
    causes = check_metadata(volume)
    spec = volume.get("spec")
    if not isinstance(spec, dict):
        return [*causes, Cause("spec", "Required value", "FieldValueRequired")]
    kinds = {"persistentVolumeReclaimPolicy": str, "storageClassName": str, "volumeMode": str}
    causes += type_causes(spec, kinds, "spec.")
    if causes:
        return causes
    causes += check_access_modes(spec.get("accessModes"), "spec.accessModes")
    causes += _check_capacity(spec.get("capacity"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy and policy not in RECLAIM_POLICIES:
        supported = ", ".join(f'"{p}"' for p in RECLAIM_POLICIES)
        message = f'Unsupported value: "{policy}": supported values: {supported}'
        causes.append(Cause("spec.persistentVolumeReclaimPolicy", message, "FieldValueNotSupported"))
    elif policy == "Recycle":
        message = (
            "Forbidden: Recycle is deprecated upstream and not implemented by nestlab; use Delete or Retain"
        )
        causes.append(Cause("spec.persistentVolumeReclaimPolicy", message, "FieldValueForbidden"))
    causes += _check_source(spec)
    causes += _check_claim_ref(spec.get("claimRef"))
    causes += check_class_name(spec.get("storageClassName"), "spec.storageClassName")
    causes += check_volume_mode(spec.get("volumeMode"), "spec.volumeMode")
    for name, why in _NOT_YET.items():
        if spec.get(name):
            message = f"Forbidden: nestlab does not implement {name} yet: {why}"
            causes.append(Cause(f"spec.{name}", message, "FieldValueForbidden"))
    state = as_dict(volume.get("status"))
    causes += type_causes(state, {"phase": str, "reason": str, "message": str}, "status.")
    phase = state.get("phase")
    if isinstance(phase, str) and phase not in PHASES:
        supported = ", ".join(f'"{p}"' for p in PHASES)
        message = f'Unsupported value: "{phase}": supported values: {supported}'
        causes.append(Cause("status.phase", message, "FieldValueNotSupported"))
    return causes


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    """Upstream ValidatePersistentVolumeUpdate: the source and the volume mode never change."""
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    causes = []
    if {k: new_spec.get(k) for k in SOURCES} != {k: old_spec.get(k) for k in SOURCES}:
        message = "Forbidden: spec.persistentvolumesource is immutable after creation"
        causes.append(Cause("spec.persistentvolumesource", message, "FieldValueForbidden"))
    if new_spec.get("volumeMode") != old_spec.get("volumeMode"):
        value = new_spec.get("volumeMode")
        causes.append(Cause("volumeMode", f'Invalid value: "{value}": field is immutable'))
    return causes


def claim_text(volume: Obj) -> str:
    """The Claim column: ``namespace/name`` of the bound claim, "" when none."""
    ref = as_dict(as_dict(volume.get("spec")).get("claimRef"))
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""


def class_of(volume: Obj) -> str:
    """Upstream GetPersistentVolumeClass: the beta annotation wins over spec.storageClassName."""
    annotations = as_dict(volume["metadata"].get("annotations"))
    beta = "volume.beta.kubernetes.io/storage-class"
    return (
        str(annotations[beta])
        if beta in annotations
        else str(as_dict(volume.get("spec")).get("storageClassName") or "")
    )


def row(volume: Obj) -> list[Any]:
    """printPersistentVolume (1.29+: with VolumeAttributesClass)."""
    meta, spec, state = volume["metadata"], as_dict(volume.get("spec")), as_dict(volume.get("status"))
    return [
        meta["name"],
        str(as_dict(spec.get("capacity")).get("storage", "0")),
        modes_text(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        "Terminating" if meta.get("deletionTimestamp") else state.get("phase", ""),
        claim_text(volume),
        class_of(volume),
        spec.get("volumeAttributesClassName") or "<unset>",
        state.get("reason", ""),
        created(volume),
        spec.get("volumeMode") or "<unset>",
    ]


KIND = Kind(
    RESOURCE,
    model="V1PersistentVolume",
    default=default,
    on_create=on_create,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column(
            "Capacity",
            "string",
            0,
            "capacity is the description of the persistent volume's resources and capacity.",
        ),
        Column("Access Modes", "string", 0, "accessModes contains all ways the volume can be mounted."),
        Column(
            "Reclaim Policy",
            "string",
            0,
            "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from "
            "its claim.",
        ),
        Column(
            "Status",
            "string",
            0,
            "phase indicates if a volume is available, bound to a claim, or released by a claim.",
        ),
        Column(
            "Claim",
            "string",
            0,
            "claimRef is part of a bi-directional binding between PersistentVolume and "
            "PersistentVolumeClaim.",
        ),
        Column("StorageClass", "string", 0, "StorageClass of the pv"),
        Column("VolumeAttributesClass", "string", 0, "VolumeAttributesClass of the pv"),
        Column("Reason", "string", 0, "reason is a brief CamelCase string that describes any failure."),
        AGE,
        Column(
            "VolumeMode",
            "string",
            1,
            "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain "
            "in raw block state.",
        ),
    ),
    row=row,
    roles={"node": {"persistentvolumes": READ}},
)
