"""Upstream's structural checks of a pod's volumes and volume mounts (ValidateVolumes,
ValidateVolumeMounts), shared by Pods and every pod template.

Which volume sources nestlab honours is the pod-field table's business (:mod:`podfields`); this
module answers what upstream answers for any pod: a volume needs a unique DNS-label name and exactly
one source, a mount must name a declared volume and a unique absolute path, and no projected file
path or subPath may climb out of its volume. So ``kubectl apply`` of a mount naming no volume gets
the 422 a learner would get from kube-apiserver, not a pod that fails later on its host.

It also holds the vSphere rule for ``hostPath`` (:func:`host_path_source`, :func:`host_path_mounts`,
called by the pod-field table's row): a vSphere Pod may mount only ``/var/log/pods`` from its host
(exactly that directory: a pod narrows it with a mount's ``subPath``), and only read-only, so every
volumeMount of it must say ``readOnly: true``; the node exports it into the pod VM over virtio-9p.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
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
FORBIDDEN = "FieldValueForbidden"
LOG_PODS = "/var/log/pods"
HOST_PATH_REASON = "vSphere Pods may mount only /var/log/pods from the host, read-only"
HOST_PATH_TYPES = ("", "Directory", "DirectoryOrCreate")  # /var/log/pods is a directory the agent makes
MODE_MAX = 0o777
TOKEN_MIN_SECONDS = 600  # a projected token lives at least 10 minutes (upstream validation)
TOKEN_MAX_SECONDS = 2**32
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


def _token(source: Obj, where: str) -> list[Cause]:
    """A serviceAccountToken projection: a path, and at least 10 minutes (upstream's bounds)."""
    causes: list[Cause] = []
    seconds = source.get("expirationSeconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
        causes.append(Cause(f"{where}.expirationSeconds", "Invalid value: must be an integer"))
    elif seconds is not None and seconds < TOKEN_MIN_SECONDS:
        causes.append(
            Cause(
                f"{where}.expirationSeconds",
                f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
            )
        )
    elif seconds is not None and seconds > TOKEN_MAX_SECONDS:
        causes.append(
            Cause(
                f"{where}.expirationSeconds",
                f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds",
            )
        )
    if not source.get("path"):
        causes.append(Cause(f"{where}.path", "Required value", "FieldValueRequired"))
    else:
        causes += _relative(source["path"], f"{where}.path")
    if source.get("audience") is not None and not isinstance(source["audience"], str):
        causes.append(Cause(f"{where}.audience", "Invalid value: must be a string", "FieldValueTypeInvalid"))
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
        causes += _projected(source, where)
    return causes


def _projected(source: Obj, where: str) -> list[Cause]:
    causes = _mode(source.get("defaultMode"), f"{where}.defaultMode")
    for index, projection in enumerate(as_list(source.get("sources"))):
        at = f"{where}.sources[{index}]"
        for name, inner in as_dict(projection).items():
            if name == "downwardAPI":
                causes += _downward_items(as_dict(inner).get("items"), f"{at}.downwardAPI")
            elif name in ("configMap", "secret"):
                causes += _items(as_dict(inner).get("items"), f"{at}.{name}")
            elif name == "serviceAccountToken":
                causes += _token(as_dict(inner), f"{at}.serviceAccountToken")
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


def host_path_source(value: Any, where: str) -> list[Cause]:
    """Causes for one ``hostPath`` source at ``where``: anything but /var/log/pods (as a directory)."""
    source = as_dict(value)
    target = source.get("path")
    if not isinstance(target, str) or posixpath.normpath(target) != LOG_PODS:
        return [Cause(where, f"Forbidden: {HOST_PATH_REASON}", FORBIDDEN)]
    kind = source.get("type") or ""
    if kind not in HOST_PATH_TYPES:
        return [
            Cause(
                f"{where}.type",
                f"Forbidden: {LOG_PODS} is a directory: type must be unset, "
                '"Directory" or "DirectoryOrCreate"',
                FORBIDDEN,
            )
        ]
    return []


def host_path_mounts(spec: Obj, path: str, lists: Sequence[str]) -> list[Cause]:
    """Causes for each mount of an allowed hostPath volume that is not ``readOnly: true``."""
    names = {
        str(volume.get("name"))
        for volume in map(as_dict, as_list(spec.get("volumes")))
        if volume.get("hostPath") is not None and not host_path_source(volume["hostPath"], "")
    }
    causes: list[Cause] = []
    for field in lists:
        for index, container in enumerate(as_list(spec.get(field))):
            for m, raw in enumerate(as_list(as_dict(container).get("volumeMounts"))):
                mount = as_dict(raw)
                if mount.get("name") in names and mount.get("readOnly") is not True:
                    where = f"{path}.{field}[{index}].volumeMounts[{m}].readOnly"
                    causes.append(Cause(where, f"Forbidden: {HOST_PATH_REASON}", FORBIDDEN))
    return causes


def check(spec: Obj, path: str) -> list[Cause]:
    """Volumes, then every app and init container's mounts, of the pod spec at ``path``."""
    causes, names = check_volumes(spec.get("volumes"), f"{path}.volumes")
    for field in ("initContainers", "containers"):
        causes += check_mounts(spec.get(field), f"{path}.{field}", names)
    return causes
