"""Upstream's structural checks of a pod's volumes and volume mounts (ValidateVolumes,
ValidateVolumeMounts), shared by Pods and every pod template.

Which volume sources nestlab honours is the pod-field table's business (:mod:`podfields`); this
module answers what upstream answers for any pod: a volume needs a unique DNS-label name and exactly
one source, a mount must name a declared volume and a unique absolute path, and no projected file
path or subPath may climb out of its volume. So ``kubectl apply`` of a mount naming no volume gets
the 422 a learner would get from kube-apiserver, not a pod that fails later on its host.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds.common import as_dict, as_list, type_causes, unique_label
from nestlab.api.status import Cause

Obj = dict[str, Any]
# Every upstream VolumeSource member (a volume must name exactly one of them).
SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
    "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
    "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
    "image",
)  # fmt: skip
MODE_MAX = 0o777
_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"


def _relative(value: Any, where: str) -> list[Cause]:
    """A path inside a volume: relative, and no ``..`` element (upstream validateLocalDescendingPath)."""
    text = str(value)
    if text.startswith("/"):
        return [Cause(where, f'Invalid value: "{text}": must be a relative path')]
    if ".." in text.split("/"):
        return [Cause(where, f"Invalid value: \"{text}\": must not contain '..'")]
    return []


def _mode(value: Any, where: str) -> list[Cause]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MODE_MAX:
        return [Cause(where, f"Invalid value: {value}: {_MODE_MSG}")]
    return []


def _items(items: Any, where: str) -> list[Cause]:
    causes: list[Cause] = []
    for index, raw in enumerate(as_list(items)):
        at, item = f"{where}.items[{index}]", as_dict(raw)
        if not item.get("key"):
            causes.append(Cause(f"{at}.key", "Required value", "FieldValueRequired"))
        if not item.get("path"):
            causes.append(Cause(f"{at}.path", "Required value", "FieldValueRequired"))
        else:
            causes += _relative(item["path"], f"{at}.path")
        causes += _mode(item.get("mode"), f"{at}.mode")
    return causes


def _downward_items(items: Any, where: str) -> list[Cause]:
    causes: list[Cause] = []
    for index, raw in enumerate(as_list(items)):
        at, item = f"{where}.items[{index}]", as_dict(raw)
        if not item.get("path"):
            causes.append(Cause(f"{at}.path", "Required value", "FieldValueRequired"))
        else:
            causes += _relative(item["path"], f"{at}.path")
        if bool(item.get("fieldRef")) == bool(item.get("resourceFieldRef")):
            causes.append(
                Cause(at, "Invalid value: must specify exactly one of fieldRef or resourceFieldRef")
            )
        causes += _mode(item.get("mode"), f"{at}.mode")
    return causes


def _source(kind: str, source: Obj, where: str) -> list[Cause]:
    """The checks of one volume source nestlab can hold (the others are refused by the table)."""
    causes: list[Cause] = []
    if kind == "configMap":
        if not source.get("name"):
            causes.append(Cause(f"{where}.name", "Required value", "FieldValueRequired"))
        causes += _items(source.get("items"), where) + _mode(
            source.get("defaultMode"), f"{where}.defaultMode"
        )
    elif kind == "secret":
        if not source.get("secretName"):
            causes.append(Cause(f"{where}.secretName", "Required value", "FieldValueRequired"))
        causes += _items(source.get("items"), where) + _mode(
            source.get("defaultMode"), f"{where}.defaultMode"
        )
    elif kind == "persistentVolumeClaim":  # upstream validatePersistentClaimVolumeSource
        causes += type_causes(source, {"claimName": str, "readOnly": bool}, f"{where}.")
        if not source.get("claimName"):
            causes.append(Cause(f"{where}.claimName", "Required value", "FieldValueRequired"))
    elif kind == "downwardAPI":
        causes += _downward_items(source.get("items"), where)
        causes += _mode(source.get("defaultMode"), f"{where}.defaultMode")
    elif kind == "projected":
        causes += _mode(source.get("defaultMode"), f"{where}.defaultMode")
        for index, projection in enumerate(as_list(source.get("sources"))):
            at = f"{where}.sources[{index}]"
            for name, inner in as_dict(projection).items():
                if name == "downwardAPI":
                    causes += _downward_items(as_dict(inner).get("items"), f"{at}.downwardAPI")
                elif name in ("configMap", "secret"):
                    causes += _items(as_dict(inner).get("items"), f"{at}.{name}")
    return causes


def check_volumes(volumes: Any, path: str) -> tuple[list[Cause], set[str]]:
    """Causes for ``spec.volumes`` and the names it declares."""
    causes: list[Cause] = []
    names: set[str] = set()
    for index, volume in enumerate(as_list(volumes)):
        where = f"{path}[{index}]"
        if not isinstance(volume, dict):
            causes.append(Cause(where, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        causes += unique_label(volume.get("name"), where, names)
        given = [s for s in SOURCES if volume.get(s) is not None]
        if not given:
            causes.append(Cause(where, "Required value: must specify a volume type", "FieldValueRequired"))
        for extra in given[1:]:
            causes.append(
                Cause(
                    f"{where}.{extra}",
                    "Forbidden: may not specify more than 1 volume type",
                    "FieldValueForbidden",
                )
            )
        if given and isinstance(volume[given[0]], dict):
            causes += _source(given[0], volume[given[0]], f"{where}.{given[0]}")
    return causes, names


def check_mounts(containers: Any, path: str, volumes: set[str]) -> list[Cause]:
    """Causes for every container's ``volumeMounts`` (``path``: ``spec.containers``)."""
    causes: list[Cause] = []
    for index, container in enumerate(as_list(containers)):
        paths: set[str] = set()
        for m, raw in enumerate(as_list(as_dict(container).get("volumeMounts"))):
            where, mount = f"{path}[{index}].volumeMounts[{m}]", as_dict(raw)
            name, target = mount.get("name"), mount.get("mountPath")
            if not name:
                causes.append(Cause(f"{where}.name", "Required value", "FieldValueRequired"))
            elif name not in volumes:
                causes.append(Cause(f"{where}.name", f'Not found: "{name}"', "FieldValueNotFound"))
            if not target:
                causes.append(Cause(f"{where}.mountPath", "Required value", "FieldValueRequired"))
            elif target in paths:
                causes.append(Cause(f"{where}.mountPath", f'Invalid value: "{target}": must be unique'))
            else:
                paths.add(str(target))
            if mount.get("subPath"):
                causes += _relative(mount["subPath"], f"{where}.subPath")
            if mount.get("subPath") and mount.get("subPathExpr"):
                causes.append(
                    Cause(
                        f"{where}.subPathExpr",
                        f'Invalid value: "{mount["subPathExpr"]}": '
                        "subPathExpr and subPath are mutually exclusive",
                    )
                )
    return causes


def check(spec: Obj, path: str) -> list[Cause]:
    """Volumes, then every app and init container's mounts, of the pod spec at ``path``."""
    causes, names = check_volumes(spec.get("volumes"), f"{path}.volumes")
    for field in ("initContainers", "containers"):
        causes += check_mounts(spec.get(field), f"{path}.{field}", names)
    return causes
