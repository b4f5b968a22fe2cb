"""storage.k8s.io/v1 VolumeAttachment: one volume given to one host, the record CNS keeps as a disk
attached to an ESXi host.

The attacher controller creates one per (PersistentVolume, node) that a bound pod needs, asks the lab
datastore to export the volume to that node and reports ``status.attached`` with the export in
``status.attachmentMetadata`` (``nbd``: the URL only the attached node is given); the node agent
reads it to give the disk to the pod's VM. The spec never changes once created (upstream
``ValidateVolumeAttachmentUpdate``); the status is the attacher's to write, through
``volumeattachments/status``. Inline volume specs are refused: every lab volume is a
PersistentVolume first. Validation and columns follow upstream (pkg/apis/storage/validation,
printers.go ``printVolumeAttachment``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from nestlab.api.kinds.base import AGE, NAME, READ, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, check_label_key, check_metadata, check_name, type_causes
from nestlab.api.kinds.persistentvolume import DRIVER
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource(
    "volumeattachments",
    "volumeattachment",
    "VolumeAttachment",
    "storage.k8s.io",
    "v1",
    False,
    (),
    ("status",),
    True,
)
NBD = "nbd"
"""The ``status.attachmentMetadata`` key holding the NBD URL the attached node connects to."""
_MAX_METADATA = 256 * 1024  # upstream maxAttachedVolumeMetadataSize
_MAX_ERROR = 1024  # upstream maxVolumeErrorMessageSize


def _check_spec(spec: Any) -> list[Cause]:
    if not isinstance(spec, dict):
        return [Cause("spec", "Required value", "FieldValueRequired")]
    causes = type_causes(spec, {"attacher": str, "nodeName": str, "source": dict}, "spec.")
    if causes:
        return causes
    attacher = spec.get("attacher")
    if not attacher:
        causes.append(Cause("spec.attacher", "Required value", "FieldValueRequired"))
    else:
        causes += check_label_key(str(attacher).lower(), "spec.attacher")
    source = as_dict(spec.get("source"))
    name, inline = source.get("persistentVolumeName"), source.get("inlineVolumeSpec")
    if inline is not None:
        message = (
            "Forbidden: nestlab does not implement inline volumes: every lab volume is a PersistentVolume; "
            "name it in persistentVolumeName"
        )
        causes.append(Cause("spec.source.inlineVolumeSpec", message, "FieldValueForbidden"))
    elif name is None:
        message = "Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName"
        causes.append(Cause("spec.source", message, "FieldValueRequired"))
    elif not name or not isinstance(name, str):
        message = "Required value: must specify non empty persistentVolumeName"
        causes.append(Cause("spec.source.persistentVolumeName", message, "FieldValueRequired"))
    else:
        causes += check_name(name, path="spec.source.persistentVolumeName")
    node = spec.get("nodeName")
    if not node:
        causes.append(Cause("spec.nodeName", "Required value", "FieldValueRequired"))
    else:
        causes += check_name(str(node), path="spec.nodeName")
    return causes


def _check_status(state: Any) -> list[Cause]:
    if state is None:
        return []
    if not isinstance(state, dict):
        return [Cause("status", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    kinds = {"attached": bool, "attachmentMetadata": dict, "attachError": dict, "detachError": dict}
    causes = type_causes(state, kinds, "status.")
    if causes:
        return causes
    metadata = as_dict(state.get("attachmentMetadata"))
    if not all(isinstance(v, str) for v in metadata.values()):
        message = "Invalid value: must be a map of string keys to string values"
        causes.append(Cause("status.attachmentMetadata", message, "FieldValueTypeInvalid"))
    elif sum(len(k) + len(v) for k, v in metadata.items()) > _MAX_METADATA:
        message = f"Too long: must have at most {_MAX_METADATA} bytes"
        causes.append(Cause("status.attachmentMetadata", message, "FieldValueTooLong"))
    for name in ("attachError", "detachError"):
        text = as_dict(state.get(name)).get("message")
        if isinstance(text, str) and len(text) > _MAX_ERROR:
            message = f"Too long: must have at most {_MAX_ERROR} bytes"
            causes.append(Cause(f"status.{name}.message", message, "FieldValueTooLong"))
    return causes


def validate(attachment: Obj) -> list[Cause]:
    """Upstream ValidateVolumeAttachment (+V1), with inline volumes refused."""
    return (
        check_metadata(attachment)
        + _check_spec(attachment.get("spec"))
        + _check_status(attachment.get("status"))
    )


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    """The spec is read-only (upstream ValidateVolumeAttachmentUpdate)."""
    if (new.get("spec") or {}) == (old.get("spec") or {}):
        return []
    return [Cause("spec", "Invalid value: field is immutable")]


def row(attachment: Obj) -> list[Any]:
    spec, state = as_dict(attachment.get("spec")), as_dict(attachment.get("status"))
    return [
        attachment["metadata"]["name"],
        spec.get("attacher", ""),
        as_dict(spec.get("source")).get("persistentVolumeName") or "",
        spec.get("nodeName", ""),
        bool(state.get("attached")),
        created(attachment),
    ]


KIND = Kind(
    RESOURCE,
    model="V1VolumeAttachment",
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column(
            "Attacher",
            "string",
            0,
            "attacher indicates the name of the volume driver that MUST handle this request.",
        ),
        Column(
            "PV", "string", 0, "persistentVolumeName represents the name of the persistent volume to attach."
        ),
        Column("Node", "string", 0, "nodeName represents the node that the volume should be attached to."),
        Column("Attached", "boolean", 0, "attached indicates the volume is successfully attached."),
        AGE,
    ),
    row=row,
    roles={"node": {"volumeattachments": READ}},
)


def attachment_name(volume_handle: str, node: str, driver: str = DRIVER) -> str:
    """Upstream's VolumeAttachment name (pkg/volume/csi ``getAttachmentName``): ``csi-`` + the hex
    sha256 of volume handle, driver (the attacher) and node name, concatenated."""
    return "csi-" + hashlib.sha256(f"{volume_handle}{driver}{node}".encode()).hexdigest()
