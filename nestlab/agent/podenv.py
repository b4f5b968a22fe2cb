"""A container's environment as the kubelet forms it: pure, from the pod and the objects it names.

The kubelet (``kubelet_pods.go`` ``makeEnvironmentVariables``) builds the environment in this order:
``envFrom`` sources (ConfigMaps and Secrets, each key under an optional prefix; keys that are not
valid variable names are skipped and reported in one ``InvalidEnvironmentVariableNames`` Event),
then ``env`` in order, each value ``$(VAR)``-expanded against what is defined so far and the
service variables (``valueFrom``: configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef), then
the service link variables (``envvars.go``) for whatever the pod did not set itself. Command and
args are expanded against the result (``$$`` escapes a ``$``). A ConfigMap or Secret that is
missing (and not ``optional``) is a :class:`MissingSource`: the container waits with
``CreateContainerConfigError`` and the agent tries again, as the kubelet does.

Everything here works on the objects as the API returns them; the agent fetches them
(:func:`references` says which) and passes them in a :class:`Sources`.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nestlab.api import quantity

Obj = dict[str, Any]
MASTER_SERVICES = ("kubernetes",)  # envvars for these (namespace default) are always given
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # upstream IsEnvVarName (1.26+)


class EnvError(Exception):
    """The container cannot be configured (``CreateContainerConfigError``); the message is upstream's."""

    reason = "CreateContainerConfigError"


class MissingSource(EnvError):  # noqa: N818 - named after what is wrong, as the kubelet says it
    """A ConfigMap, Secret or key the container needs does not exist (yet): the agent retries."""


@dataclass(frozen=True)
class Sources:
    """The API objects and node facts a pod's environment and volumes are formed from."""

    configmaps: Mapping[str, Obj] = field(default_factory=dict)
    """ConfigMaps of the pod's namespace by name (only those that exist)."""
    secrets: Mapping[str, Obj] = field(default_factory=dict)
    """Secrets of the pod's namespace by name (only those that exist)."""
    services: Sequence[Obj] = ()
    """The Services the pod's environment may name: its namespace's and default/kubernetes."""
    pod_ip: str = ""
    host_ip: str = ""
    node_cpu_m: int = 0
    """Node allocatable millicores: what ``limits.cpu`` means for a container without a limit."""
    node_memory_mib: int = 0
    """Node allocatable MiB: what ``limits.memory`` means for a container without a limit."""


def references(pod: Obj) -> tuple[set[str], set[str]]:
    """(ConfigMap names, Secret names) that ``pod``'s env, envFrom and volumes refer to."""
    spec = pod.get("spec") or {}
    cms: set[str] = set()
    secrets: set[str] = set()
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for item in c.get("envFrom") or []:
            if "configMapRef" in item:
                cms.add(str((item["configMapRef"] or {}).get("name", "")))
            if "secretRef" in item:
                secrets.add(str((item["secretRef"] or {}).get("name", "")))
        for item in c.get("env") or []:
            source = item.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                cms.add(str((source["configMapKeyRef"] or {}).get("name", "")))
            if "secretKeyRef" in source:
                secrets.add(str((source["secretKeyRef"] or {}).get("name", "")))
    for volume in spec.get("volumes") or []:
        sources = [volume, *((volume.get("projected") or {}).get("sources") or [])]
        for s in sources:
            if "configMap" in s:
                cms.add(str((s["configMap"] or {}).get("name", "")))
            if "secret" in s:
                secret = s["secret"] or {}
                secrets.add(str(secret.get("secretName", secret.get("name", ""))))
    return cms, secrets


def configmap_data(cm: Obj) -> dict[str, bytes]:
    """A ConfigMap's keys as bytes: ``data`` (UTF-8) and ``binaryData`` (base64)."""
    out = {str(k): str(v).encode() for k, v in (cm.get("data") or {}).items()}
    out.update({str(k): base64.b64decode(str(v)) for k, v in (cm.get("binaryData") or {}).items()})
    return out


def secret_data(secret: Obj) -> dict[str, bytes]:
    """A Secret's keys as bytes (``data`` is base64, ``stringData`` is folded in by the API)."""
    out = {str(k): base64.b64decode(str(v)) for k, v in (secret.get("data") or {}).items()}
    out.update({str(k): str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
    return out


# --- $(VAR) expansion (k8s.io/kubernetes/third_party/forked/golang/expansion) -------------------------


def _read_name(text: str) -> tuple[str, bool, int]:
    if text[0] == "$":
        return "$", False, 1
    if text[0] == "(":
        close = text.find(")", 1)
        if close >= 0:
            return text[1:close], True, close + 1
        return "$(", False, 1
    return "$" + text[0], False, 1


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """``text`` with every ``$(NAME)`` that ``lookup`` knows replaced, ``$$`` as ``$``, the rest kept."""
    out: list[str] = []
    checkpoint, cursor = 0, 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            name, is_var, advance = _read_name(text[cursor + 1 :])
            if is_var:
                value = lookup(name)
                out.append(f"$({name})" if value is None else value)
            else:
                out.append(name)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def mapping(*maps: Mapping[str, str]) -> Callable[[str], str | None]:
    """A lookup through ``maps`` in order (the kubelet's ``MappingFuncFor``)."""

    def lookup(name: str) -> str | None:
        for m in maps:
            if name in m:
                return m[name]
        return None

    return lookup


def expand_command(argv: Iterable[str], env: Mapping[str, str]) -> tuple[str, ...]:
    """Command or args expanded against the container's final environment."""
    lookup = mapping(env)
    return tuple(expand(a, lookup) for a in argv)


# --- service links (pkg/kubelet/envvars/envvars.go) -------------------------------------------------


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def _service_vars(svc: Obj) -> dict[str, str]:
    spec = svc.get("spec") or {}
    ip = str(spec.get("clusterIP") or "")
    name = _env_name(str((svc.get("metadata") or {}).get("name", "")))
    ports = spec.get("ports") or []
    out = {f"{name}_SERVICE_HOST": ip}
    if not ports:
        return out
    out[f"{name}_SERVICE_PORT"] = str(ports[0].get("port"))
    for p in ports:
        if p.get("name"):
            out[f"{name}_SERVICE_PORT_{_env_name(str(p['name']))}"] = str(p.get("port"))
    first = ports[0]
    out[f"{name}_PORT"] = f"{str(first.get('protocol') or 'TCP').lower()}://{ip}:{first.get('port')}"
    for p in ports:
        proto = str(p.get("protocol") or "TCP")
        prefix = f"{name}_PORT_{p.get('port')}_{proto.upper()}"
        out[prefix] = f"{proto.lower()}://{ip}:{p.get('port')}"
        out[f"{prefix}_PROTO"] = proto.lower()
        out[f"{prefix}_PORT"] = str(p.get("port"))
        out[f"{prefix}_ADDR"] = ip
    return out


def service_env(namespace: str, services: Sequence[Obj], enable_links: bool) -> dict[str, str]:
    """The service link variables: default/kubernetes always, the namespace's Services when asked;
    Services without a cluster IP (headless, ExternalName) give none."""
    chosen: dict[str, Obj] = {}
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ip = str(spec.get("clusterIP") or "")
        if ip in ("", "None"):
            continue
        name, ns = str(meta.get("name", "")), str(meta.get("namespace", ""))
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_links:
            chosen[name] = svc
    out: dict[str, str] = {}
    for name in sorted(chosen):
        out.update(_service_vars(chosen[name]))
    return out


# --- downward API values ----------------------------------------------------------------------------


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def _format_map(values: Mapping[str, Any]) -> str:
    """``k="v"`` lines sorted by key (upstream ``FormatMap``: Go's %q quoting)."""
    return "\n".join(f"{k}={_go_quote(str(values[k]))}" for k in sorted(values))


def _go_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def field_value(pod: Obj, path: str, sources: Sources, *, whole_maps: bool = False) -> str:
    """A fieldRef's value (``metadata.labels['app']``, ``status.podIP``...); ``whole_maps`` allows
    ``metadata.labels``/``metadata.annotations`` (downwardAPI volumes)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    subscript = _SUBSCRIPT.match(path)
    if subscript:
        return str((meta.get(subscript.group(1)) or {}).get(subscript.group(2), ""))
    if whole_maps and path in ("metadata.labels", "metadata.annotations"):
        return _format_map(meta.get(path.split(".")[1]) or {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or spec.get("serviceAccount"),
        "status.podIP": sources.pod_ip,
        "status.podIPs": sources.pod_ip,
        "status.hostIP": sources.host_ip,
        "status.hostIPs": sources.host_ip,
    }
    if path not in simple:
        raise EnvError(f"unsupported fieldPath: {path}")
    return str(simple[path] or "")


def resource_value(pod: Obj, ref: Obj, container: str, sources: Sources) -> str:
    """A resourceFieldRef's value: the container's limit (node allocatable when it has none) or
    request, divided by ``divisor`` and rounded up, as upstream ``ExtractContainerResourceValue``."""
    name = str(ref.get("containerName") or container)
    resource = str(ref.get("resource", ""))
    spec = pod.get("spec") or {}
    everyone = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    found = [c for c in everyone if c.get("name") == name]
    if not found:
        raise EnvError(f"container {name} not found in pod {(pod.get('metadata') or {}).get('name')}")
    res = found[0].get("resources") or {}
    kind, _, what = resource.partition(".")
    if kind not in ("limits", "requests") or what not in ("cpu", "memory"):
        raise EnvError(f"unsupported container resource: {resource}")
    raw = (res.get(kind) or {}).get(what)
    if raw is None and kind == "requests":  # API defaulting: requests default to limits
        raw = (res.get("limits") or {}).get(what)
    if raw is not None:
        value = quantity.parse(str(raw))
    elif kind == "limits":
        value = (
            Decimal(sources.node_cpu_m) / 1000 if what == "cpu" else Decimal(sources.node_memory_mib) * 2**20
        )
    else:
        value = Decimal(0)
    divisor = quantity.parse(str(ref.get("divisor") or "1"))
    if divisor <= 0:
        raise EnvError(f"resourceFieldRef {resource}: divisor must be positive")
    if what == "cpu":  # upstream divides millicores (rounded up) by the divisor's millicores
        return str(math.ceil(Decimal(math.ceil(value * 1000)) / Decimal(max(math.ceil(divisor * 1000), 1))))
    return str(math.ceil(value / divisor))


# --- the whole environment --------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerEnv:
    """A container's environment and what the kubelet would say about it."""

    env: tuple[tuple[str, str], ...]
    invalid_names: tuple[str, ...] = ()
    """``InvalidEnvironmentVariableNames`` Event messages: envFrom keys skipped, one per source."""


def _from_sources(c: Obj, namespace: str, sources: Sources, env: dict[str, str], warnings: list[str]) -> None:
    for item in c.get("envFrom") or []:
        prefix = str(item.get("prefix") or "")
        is_cm = "configMapRef" in item
        ref = (item["configMapRef"] if is_cm else item.get("secretRef")) or {}
        kind = "configmap" if is_cm else "secret"
        name = str(ref.get("name", ""))
        obj = (sources.configmaps if is_cm else sources.secrets).get(name)
        if obj is None:
            if ref.get("optional"):
                continue
            raise MissingSource(f'{kind} "{name}" not found')
        # upstream: a ConfigMap's ``data`` only (binaryData is not offered as variables)
        data = (
            {str(k): str(v).encode() for k, v in (obj.get("data") or {}).items()}
            if is_cm
            else secret_data(obj)
        )
        invalid = []
        for key in sorted(data):
            var = prefix + key
            if not _ENV_NAME.match(var):
                invalid.append(var)
                continue
            env[var] = data[key].decode(errors="replace")
        if invalid:
            warnings.append(
                f"Keys [{', '.join(invalid)}] from the EnvFrom {kind} {namespace}/{name} were skipped "
                "since they are considered invalid environment variable names."
            )


def _key_ref(ref: Obj, kind: str, namespace: str, sources: Sources) -> str | None:
    objs = sources.configmaps if kind == "configmap" else sources.secrets
    name, key = str(ref.get("name", "")), str(ref.get("key", ""))
    obj = objs.get(name)
    if obj is None:
        if ref.get("optional"):
            return None
        raise MissingSource(f'{kind} "{name}" not found')
    data = configmap_data(obj) if kind == "configmap" else secret_data(obj)
    if key not in data:
        if ref.get("optional"):
            return None
        label = "ConfigMap" if kind == "configmap" else "Secret"
        raise MissingSource(f"couldn't find key {key} in {label} {namespace}/{name}")
    return data[key].decode(errors="replace")


def container_env(pod: Obj, c: Obj, sources: Sources) -> ContainerEnv:
    """The environment the kubelet gives container ``c`` of ``pod`` (before the image's own env,
    which the runtime puts underneath)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    namespace = str(meta.get("namespace") or "default")
    links = spec.get("enableServiceLinks")
    services = service_env(namespace, sources.services, links is None or bool(links))
    env: dict[str, str] = {}
    invalid: list[str] = []
    _from_sources(c, namespace, sources, env, invalid)
    for item in c.get("env") or []:
        name = str(item.get("name", ""))
        source = item.get("valueFrom")
        value: str | None
        if not source:
            value = expand(str(item.get("value") or ""), mapping(env, services))
        elif "configMapKeyRef" in source:
            value = _key_ref(source["configMapKeyRef"] or {}, "configmap", namespace, sources)
        elif "secretKeyRef" in source:
            value = _key_ref(source["secretKeyRef"] or {}, "secret", namespace, sources)
        elif "fieldRef" in source:
            value = field_value(pod, str((source["fieldRef"] or {}).get("fieldPath", "")), sources)
        elif "resourceFieldRef" in source:
            value = resource_value(pod, source["resourceFieldRef"] or {}, str(c.get("name")), sources)
        else:
            raise EnvError(f"env {name}: valueFrom names no source")
        if value is not None:
            env[name] = value
    for key, value in services.items():
        env.setdefault(key, value)
    return ContainerEnv(tuple(env.items()), tuple(invalid))
