"""A pod's volumes as pod-init makes them: pure, from the pod spec and the objects it names.

vSphere keeps a pod's emptyDirs and ConfigMaps on the pod's ephemeral VMDK; here pod-init makes an
emptyDir a directory on the ephemeral disk (``medium: Memory``: a tmpfs of ``sizeLimit`` that the
agent adds to the VM's memory), and a configMap, secret, downwardAPI or projected volume a set of
files: :func:`generation` forms one *generation* of them (relative path, mode, bytes) the way the
kubelet's volume plugins do (``items`` choose and rename keys, ``defaultMode``/``mode``, 0644 by
default, ``optional`` sources may be missing), and pod-init writes it with the kubelet's
AtomicWriter layout (``..<gen>/`` directory, ``..data`` symlink swapped with rename(2), top-level
links into ``..data``), so the agent can send a new generation to a running pod and every reader
sees either the old files or the new ones.

A ConfigMap or Secret that is missing is a :class:`MissingVolumeSource` whose message is the
kubelet's FailedMount Event (``MountVolume.SetUp failed for volume "v" : configmap "x" not
found``); the pod stays ContainerCreating and the agent tries again. Anything that can never work
(an unknown volume type, a mount naming no volume, a subPath leaving the volume) is a
:class:`VolumeError`.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nestlab.agent import podenv
from nestlab.api import quantity
from nestlab.runtime.poddesc import HOST_PATH_REASON, HOST_PATHS, Mount, Volume, VolumeFile

Obj = dict[str, Any]
DEFAULT_MODE = 0o644  # upstream's default for configMap, secret, downwardAPI and projected files
FILE_TYPES = ("configMap", "secret", "downwardAPI", "projected")
"""Volume types pod-init fills with files (and the agent keeps up to date)."""
REFUSED_PROJECTIONS = ("clusterTrustBundle", "podCertificate")  # nestlab issues no such credentials
DEFAULT_TOKEN_SECONDS = 3600  # upstream's default expirationSeconds of a serviceAccountToken projection
TokenKey = tuple[str, int]
"""(audience, expirationSeconds) of a serviceAccountToken projection: what its token is asked with."""


@dataclass(frozen=True)
class VolumeSources(podenv.Sources):
    """The sources, plus the pod's service-account tokens (fetched by the agent through the API)."""

    tokens: Mapping[TokenKey, str] = field(default_factory=dict)
    """The current token of each projection by :func:`token_key`."""
    token_errors: Mapping[TokenKey, str] = field(default_factory=dict)
    """Why a projection has no token (the API refused the TokenRequest)."""


def token_key(source: Obj) -> TokenKey:
    """The (audience, expirationSeconds) a serviceAccountToken projection asks for."""
    seconds = source.get("expirationSeconds")
    return str(source.get("audience") or ""), int(seconds) if seconds else DEFAULT_TOKEN_SECONDS


def token_keys(pod: Obj) -> set[TokenKey]:
    """Every serviceAccountToken projection of ``pod``'s volumes."""
    keys = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            if isinstance(source.get("serviceAccountToken"), dict):
                keys.add(token_key(source["serviceAccountToken"]))
    return keys


class VolumeError(podenv.EnvError):
    """A volume or mount pod-init cannot make (``CreateContainerConfigError``)."""


class MissingVolumeSource(podenv.MissingSource):
    """A ConfigMap or Secret (or key) a volume needs is missing: FailedMount, retried."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume


def _relative(path: str, where: str) -> str:
    """``path`` if it is a relative path that stays inside its volume."""
    parts = path.split("/")
    if not path or path.startswith("/") or ".." in parts or path.startswith(".."):
        raise VolumeError(f"{where}: {path!r} must be a relative path without '..'")
    return posixpath.normpath(path)


def _mode(value: Any, default: int, where: str) -> int:
    mode = default if value is None else int(value)
    if not 0 <= mode <= 0o777:
        raise VolumeError(f"{where}: mode {mode:#o} must be between 0 and 0777")
    return mode


def _keyed(
    volume: str, source: Obj, kind: str, sources: podenv.Sources, *, default_mode: int, where: str
) -> list[VolumeFile]:
    """The files of a configMap or secret source (``items`` choose keys and paths)."""
    name = str(
        source.get("secretName", source.get("name", "")) if kind == "secret" else source.get("name", "")
    )
    obj = (sources.configmaps if kind == "configmap" else sources.secrets).get(name)
    optional = bool(source.get("optional"))
    if obj is None:
        if optional:
            return []
        raise MissingVolumeSource(volume, f'{kind} "{name}" not found')
    data = podenv.configmap_data(obj) if kind == "configmap" else podenv.secret_data(obj)
    items = source.get("items")
    if not items:
        return [VolumeFile(_relative(k, where), default_mode, data[k]) for k in sorted(data)]
    files = []
    for i, item in enumerate(items):
        key = str(item.get("key", ""))
        if key not in data:
            if optional:
                continue
            what = "config key" if kind == "configmap" else "secret key"
            raise MissingVolumeSource(volume, f"{kind} references non-existent {what}: {key}")
        path = _relative(str(item.get("path", "")), f"{where}.items[{i}].path")
        files.append(
            VolumeFile(path, _mode(item.get("mode"), default_mode, f"{where}.items[{i}]"), data[key])
        )
    return files


def _downward(
    pod: Obj, source: Obj, sources: podenv.Sources, default_mode: int, where: str
) -> list[VolumeFile]:
    files = []
    for i, item in enumerate(source.get("items") or []):
        at = f"{where}.items[{i}]"
        path = _relative(str(item.get("path", "")), f"{at}.path")
        if item.get("fieldRef"):
            value = podenv.field_value(
                pod, str(item["fieldRef"].get("fieldPath", "")), sources, whole_maps=True
            )
        elif item.get("resourceFieldRef"):
            ref = item["resourceFieldRef"]
            if not ref.get("containerName"):
                raise VolumeError(f"{at}.resourceFieldRef.containerName is required in a volume")
            value = podenv.resource_value(pod, ref, str(ref["containerName"]), sources)
        else:
            raise VolumeError(f"{at}: needs fieldRef or resourceFieldRef")
        files.append(VolumeFile(path, _mode(item.get("mode"), default_mode, at), value.encode()))
    return files


def _token(volume: str, source: Obj, sources: podenv.Sources, mode: int, where: str) -> VolumeFile:
    """The token file of a serviceAccountToken projection (the kubelet's: ``path``, defaultMode)."""
    path = _relative(str(source.get("path", "")), f"{where}.path")
    key = token_key(source)
    tokens = sources.tokens if isinstance(sources, VolumeSources) else {}
    if key not in tokens:
        errors = sources.token_errors if isinstance(sources, VolumeSources) else {}
        raise MissingVolumeSource(volume, f"failed to fetch token: {errors.get(key, 'not requested yet')}")
    return VolumeFile(path, mode, tokens[key].encode())


def generation(pod: Obj, volume: Obj, sources: podenv.Sources) -> tuple[VolumeFile, ...]:
    """The files of one configMap/secret/downwardAPI/projected volume, by path."""
    name = str(volume.get("name", ""))
    where = f"spec.volumes[{name}]"
    files: list[VolumeFile] = []
    if "configMap" in volume or "secret" in volume:
        kind = "configMap" if "configMap" in volume else "secret"
        source = volume[kind] or {}
        mode = _mode(source.get("defaultMode"), DEFAULT_MODE, f"{where}.{kind}.defaultMode")
        files = _keyed(name, source, kind.lower(), sources, default_mode=mode, where=f"{where}.{kind}")
    elif "downwardAPI" in volume:
        source = volume["downwardAPI"] or {}
        mode = _mode(source.get("defaultMode"), DEFAULT_MODE, f"{where}.downwardAPI.defaultMode")
        files = _downward(pod, source, sources, mode, f"{where}.downwardAPI")
    elif "projected" in volume:
        projected = volume["projected"] or {}
        mode = _mode(projected.get("defaultMode"), DEFAULT_MODE, f"{where}.projected.defaultMode")
        for i, s in enumerate(projected.get("sources") or []):
            at = f"{where}.projected.sources[{i}]"
            if "configMap" in s or "secret" in s:
                kind = "configMap" if "configMap" in s else "secret"
                files += _keyed(
                    name, s[kind] or {}, kind.lower(), sources, default_mode=mode, where=f"{at}.{kind}"
                )
            elif "downwardAPI" in s:
                files += _downward(pod, s["downwardAPI"] or {}, sources, mode, f"{at}.downwardAPI")
            elif "serviceAccountToken" in s:
                files.append(
                    _token(name, s["serviceAccountToken"] or {}, sources, mode, f"{at}.serviceAccountToken")
                )
            else:
                kinds = ", ".join(sorted(s)) or "nothing"
                raise VolumeError(f"{at}: projected source {kinds} is not implemented by nestlab")
    else:
        raise VolumeError(f"{where}: not a volume with files")
    by_path = {f.path: f for f in files}  # a later source's path wins, as the kubelet's payload map
    return tuple(by_path[p] for p in sorted(by_path))


def _size_mib(limit: Any, where: str) -> int:
    if limit is None:
        return 0
    try:
        return max(1, math.ceil(quantity.parse(str(limit)) / Decimal(2**20)))
    except (quantity.QuantityError, ArithmeticError) as exc:
        raise VolumeError(f"{where}.sizeLimit: {exc}") from exc


def volumes(pod: Obj, sources: podenv.Sources) -> tuple[Volume, ...]:
    """Every volume of ``pod`` as pod-init makes it, file volumes with their first generation."""
    out = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = str(volume.get("name", ""))
        if "emptyDir" in volume:
            empty = volume["emptyDir"] or {}
            if empty.get("medium") == "Memory":
                out.append(
                    Volume(name, "tmpfs", _size_mib(empty.get("sizeLimit"), f"spec.volumes[{name}].emptyDir"))
                )
            elif empty.get("medium") in (None, ""):
                out.append(Volume(name, "dir"))
            else:
                raise VolumeError(
                    f"spec.volumes[{name}].emptyDir.medium {empty['medium']!r} is not supported"
                )
        elif any(t in volume for t in FILE_TYPES):
            out.append(Volume(name, "files", files=generation(pod, volume, sources)))
        elif "hostPath" in volume:
            out.append(Volume(name, "hostpath", source=_host_path(volume["hostPath"], name)))
        else:
            kinds = ", ".join(k for k in sorted(volume) if k != "name") or "no type"
            raise VolumeError(f"spec.volumes[{name}]: volume type {kinds} is not supported by nestlab")
    return tuple(out)


def _host_path(source: Any, name: str) -> str:
    """A hostPath volume's path: only /var/log/pods (the vSphere rule; the API refuses the rest too)."""
    path = posixpath.normpath(str((source or {}).get("path") or "/")) if isinstance(source, dict) else ""
    if path not in HOST_PATHS:
        raise VolumeError(f"spec.volumes[{name}].hostPath: {HOST_PATH_REASON}")
    return path


def tmpfs_mib(pod: Obj) -> int:
    """MiB of ``medium: Memory`` emptyDirs with a sizeLimit: what the pod VM's memory grows by."""
    total = 0
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        empty = volume.get("emptyDir")
        if isinstance(empty, dict) and empty.get("medium") == "Memory":
            total += _size_mib(empty.get("sizeLimit"), f"spec.volumes[{volume.get('name')}].emptyDir")
    return total


def file_volumes(pod: Obj) -> tuple[Obj, ...]:
    """The volumes whose files follow their ConfigMaps/Secrets (what the agent re-reads)."""
    return tuple(v for v in (pod.get("spec") or {}).get("volumes") or [] if any(t in v for t in FILE_TYPES))


def mounts(pod: Obj, c: Obj, where: str, env: Mapping[str, str]) -> tuple[Mount, ...]:
    """Container ``c``'s volumeMounts checked against the pod's volumes (``subPathExpr`` expanded
    with the container's environment, as the kubelet does)."""
    volumes = (pod.get("spec") or {}).get("volumes") or []
    names = {str(v.get("name", "")) for v in volumes}
    host_paths = {str(v.get("name", "")) for v in volumes if "hostPath" in v}
    out = []
    for i, m in enumerate(c.get("volumeMounts") or []):
        at = f"{where}.volumeMounts[{i}]"
        name, path = str(m.get("name", "")), str(m.get("mountPath", ""))
        if name not in names:
            raise VolumeError(f'{at}.name: volume "{name}" is not one of the pod\'s volumes')
        if not path.startswith("/"):
            raise VolumeError(f"{at}.mountPath {path!r} must be absolute")
        sub = str(m.get("subPath") or "")
        if m.get("subPathExpr"):
            sub = podenv.expand(str(m["subPathExpr"]), podenv.mapping(env))
        if sub:
            sub = _relative(sub, f"{at}.subPath")
        if m.get("mountPropagation") not in (None, "None"):
            raise VolumeError(f"{at}.mountPropagation: only None is supported in a vSphere Pod")
        if name in host_paths and m.get("readOnly") is not True:
            raise VolumeError(f"{at}.readOnly: {HOST_PATH_REASON}")
        out.append(Mount(name, posixpath.normpath(path), bool(m.get("readOnly")), sub))
    return tuple(out)
