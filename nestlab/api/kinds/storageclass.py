"""storage.k8s.io/v1 StorageClass: which datastore a claim's volume comes from, and on what terms.

In vSphere with Kubernetes a vSphere admin assigns VM storage policies to a Namespace and each one
appears in it as a StorageClass whose provisioner is CNS. Here the lab's one datastore plays CNS:
the class ``datastore`` (provisioner ``datastore.nestlab.io``) exists from the API server's first
start (:mod:`nestlab.api.storageclasses`) and is the default class, so a claim that names no class
gets it (upstream's DefaultStorageClass admission). The unit keeps upstream's defaults
(``reclaimPolicy: Delete``, ``volumeBindingMode: Immediate``), its validation
(pkg/apis/storage/validation ``ValidateStorageClass`` and ``ValidateStorageClassUpdate``) and the
``kubectl get storageclasses`` columns, the default class's name followed by ``(default)``.
``allowedTopologies`` and ``mountOptions`` are refused by name: the lab's datastore reaches every
host and pod-init mounts with its own options, so either would be stored and never honoured; an
expandable class of the lab's provisioner is refused too, as its datastore does not grow volumes.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds.base import AGE, NAME, READ, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, check_label_key, check_metadata, type_causes
from nestlab.api.kinds.printing import created
from nestlab.api.kinds.wiremeta import OBJECT_META, Schema
from nestlab.api.status import Cause

RESOURCE = Resource("storageclasses", "storageclass", "StorageClass", "storage.k8s.io", "v1", False, ("sc",))
PROVISIONER = "datastore.nestlab.io"
"""The lab datastore's provisioner (and CSI driver) name: the provisioner and attacher controllers
act on classes, volumes and attachments that carry it."""
DEFAULT_CLASS = "datastore"
"""The class the API server creates at bootstrap and marks default."""
IS_DEFAULT = "storageclass.kubernetes.io/is-default-class"
BETA_IS_DEFAULT = "storageclass.beta.kubernetes.io/is-default-class"
"""Upstream still honours the beta annotation (storageutil.IsDefaultAnnotation)."""
RECLAIM_POLICIES = ("Delete", "Retain")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
IMMEDIATE, WAIT_FOR_FIRST_CONSUMER = BINDING_MODES
_MAX_PARAMETERS = 512  # upstream maxProvisionerParameterLen
_MAX_PARAMETER_SIZE = (
    256 * 1024
)  # upstream maxProvisionerParameterSize: the class travels in every claim's event
_NOT_HONOURED = {
    "allowedTopologies": "the lab datastore reaches every host, so there is no topology to restrict",
    "mountOptions": "pod-init mounts every volume with its own options",
}


def is_default(storage_class: Obj) -> bool:
    """Upstream IsDefaultAnnotation: either annotation set to ``"true"``."""
    annotations = as_dict(as_dict(storage_class.get("metadata")).get("annotations"))
    return annotations.get(IS_DEFAULT) == "true" or annotations.get(BETA_IS_DEFAULT) == "true"


def default_class(classes: list[Obj]) -> Obj | None:
    """The class a claim without one gets: of the classes marked default, the newest (upstream picks
    the most recently created since 1.26; ties go to the name, for a stable answer), else None."""
    marked = [c for c in classes if is_default(c) and not c["metadata"].get("deletionTimestamp")]
    if not marked:
        return None
    return max(marked, key=lambda c: (str(c["metadata"].get("creationTimestamp", "")), c["metadata"]["name"]))


def lab_default() -> Obj:
    """The lab's default class, as the API server creates it at bootstrap."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": DEFAULT_CLASS,
            "annotations": {IS_DEFAULT: "true"},
            "labels": {"app.kubernetes.io/managed-by": "nestlab-apiserver"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER,
        "allowVolumeExpansion": False,
    }


def default(storage_class: Obj) -> None:
    """Upstream SetDefaults_StorageClass."""
    if storage_class.get("reclaimPolicy") is None:
        storage_class["reclaimPolicy"] = "Delete"
    if storage_class.get("volumeBindingMode") is None:
        storage_class["volumeBindingMode"] = IMMEDIATE


def _supported(value: Any, allowed: tuple[str, ...], path: str) -> list[Cause]:
    if value in allowed:
        return []
    supported = ", ".join(f'"{v}"' for v in allowed)
    message = f'Unsupported value: "{value}": supported values: {supported}'
    return [Cause(path, message, "FieldValueNotSupported")]


def _check_provisioner(provisioner: Any) -> list[Cause]:
    if not provisioner:
        return [Cause("provisioner", "Required value", "FieldValueRequired")]
    causes = check_label_key(str(provisioner).lower(), "provisioner")
    return [Cause(c.field, c.message.replace(str(provisioner).lower(), str(provisioner), 1)) for c in causes]


def _check_parameters(parameters: Any) -> list[Cause]:
    if parameters is None:
        return []
    if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
        message = "Invalid value: must be a map of string keys to string values"
        return [Cause("parameters", message, "FieldValueTypeInvalid")]
    if len(parameters) > _MAX_PARAMETERS:
        message = f"Too long: must have at most {_MAX_PARAMETERS} items"
        return [Cause("parameters", message, "FieldValueTooLong")]
    causes = [
        Cause("parameters", 'Invalid value: "": field can not be empty.') for key in parameters if not key
    ]
    if sum(len(k) + len(v) for k, v in parameters.items()) > _MAX_PARAMETER_SIZE:
        causes.append(
            Cause(
                "parameters", f"Too long: must have at most {_MAX_PARAMETER_SIZE} bytes", "FieldValueTooLong"
            )
        )
    return causes


def validate(storage_class: Obj) -> list[Cause]:
    """Upstream ValidateStorageClass, and the lab's refusals of what it would not honour."""
    causes = check_metadata(storage_class)
    kinds = {"provisioner": str, "reclaimPolicy": str, "volumeBindingMode": str, "allowVolumeExpansion": bool}
    causes += type_causes(storage_class, {**kinds, "mountOptions": list, "allowedTopologies": list})
    if causes:
        return causes
    causes += _check_provisioner(storage_class.get("provisioner"))
    causes += _check_parameters(storage_class.get("parameters"))
    causes += _supported(storage_class.get("reclaimPolicy"), RECLAIM_POLICIES, "reclaimPolicy")
    mode = storage_class.get("volumeBindingMode")
    if mode is None:
        causes.append(Cause("volumeBindingMode", "Required value", "FieldValueRequired"))
    else:
        causes += _supported(mode, BINDING_MODES, "volumeBindingMode")
    for name, why in _NOT_HONOURED.items():
        if storage_class.get(name):
            message = f"Forbidden: nestlab does not implement {name} yet: {why}"
            causes.append(Cause(name, message, "FieldValueForbidden"))
    if storage_class.get("allowVolumeExpansion") and storage_class.get("provisioner") == PROVISIONER:
        message = (
            f"Forbidden: nestlab does not implement volume expansion yet: the lab datastore "
            f"({PROVISIONER}) cannot grow a volume, so claims of this class could not be resized"
        )
        causes.append(Cause("allowVolumeExpansion", message, "FieldValueForbidden"))
    return causes


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    """Upstream ValidateStorageClassUpdate: what a provisioner read at provisioning stays as it was."""
    causes = []
    if (new.get("parameters") or {}) != (old.get("parameters") or {}):
        causes.append(
            Cause("parameters", "Forbidden: updates to parameters are forbidden.", "FieldValueForbidden")
        )
    for name in ("provisioner", "reclaimPolicy"):
        if new.get(name) != old.get(name):
            message = f"Forbidden: updates to {name} are forbidden."
            causes.append(Cause(name, message, "FieldValueForbidden"))
    if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
        value = new.get("volumeBindingMode")
        causes.append(Cause("volumeBindingMode", f'Invalid value: "{value}": field is immutable'))
    return causes


def row(storage_class: Obj) -> list[Any]:
    """printStorageClass: ``NAME (default)``, provisioner, reclaim policy, binding mode, expansion."""
    name = storage_class["metadata"]["name"] + (" (default)" if is_default(storage_class) else "")
    return [
        name,
        storage_class.get("provisioner", ""),
        storage_class.get("reclaimPolicy") or "Delete",
        storage_class.get("volumeBindingMode") or IMMEDIATE,
        bool(storage_class.get("allowVolumeExpansion")),
        created(storage_class),
    ]


# -- protobuf (k8s.io/api storage/v1 generated.proto, message StorageClass) -------------------------
STORAGE_CLASS: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("provisioner", "str"),
    3: ("parameters", "map"),
    4: ("reclaimPolicy", "str"),
    5: ("mountOptions", "strs"),
    6: ("allowVolumeExpansion", "bool"),
    7: ("volumeBindingMode", "str"),
}

KIND = Kind(
    RESOURCE,
    model="V1StorageClass",
    default=default,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column("Provisioner", "string", 0, "provisioner indicates the type of the provisioner."),
        Column(
            "ReclaimPolicy",
            "string",
            0,
            "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this "
            "storage class. Defaults to Delete.",
        ),
        Column(
            "VolumeBindingMode",
            "string",
            0,
            "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound. When "
            "unset, VolumeBindingImmediate is used.",
        ),
        Column(
            "AllowVolumeExpansion",
            "string",
            0,
            "allowVolumeExpansion shows whether the storage class allow volume expand.",
        ),
        AGE,
    ),
    row=row,
    roles={"node": {"storageclasses": READ}},  # classes are cluster-scoped: administrators write them
    protobuf=STORAGE_CLASS,
)
