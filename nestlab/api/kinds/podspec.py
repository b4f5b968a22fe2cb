"""The pod spec rules shared by Pods and every kind that carries a pod template (Deployment, Job...).

Defaulting follows upstream (restartPolicy Always, imagePullPolicy from the tag...), so a client
reads back what it would from kube-apiserver, and the same checks run on a template as on a pod:
a Deployment whose template could never make a valid pod is refused when it is created, not
later, pod by pod, in the controller. Fields nestlab does not honour are refused by name
(:mod:`nestlab.api.kinds.podfields`, the table docs/api.md prints), never stored and ignored.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from nestlab.api import quantity
from nestlab.api.affinity import check_affinity, check_topology_spread
from nestlab.api.kinds import podfields, podvolumes
from nestlab.api.kinds.common import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    LABEL_MSG,
    SUBDOMAIN_MSG,
    as_dict,
    as_list,
    check_labels,
    check_map_of_strings,
    selector_matches,
    type_causes,
    unique_label,
)
from nestlab.api.status import Cause

Obj = dict[str, Any]
RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
MAX_DNS_NAMESERVERS = 3  # upstream MaxDNSNameservers (glibc's MAXNS)
MAX_DNS_SEARCH_PATHS = 32  # upstream MaxDNSSearchPaths since ExpandedDNSConfig went GA (1.28)
MAX_DNS_SEARCH_CHARS = 2048  # upstream MaxDNSSearchListChars, spaces included
_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def default_spec(spec: Obj) -> None:
    """Fill a pod spec's upstream defaults in place."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    if not spec.get("dnsPolicy"):  # upstream defaults an empty policy too
        spec["dnsPolicy"] = "ClusterFirst"
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    for container in as_list(spec.get("containers")):
        if not isinstance(container, dict) or not isinstance(container.setdefault("resources", {}), dict):
            continue
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        limits = as_dict(container["resources"].get("limits"))
        requests = container["resources"].setdefault("requests", {}) if limits else None
        for name, value in limits.items():
            if isinstance(requests, dict):
                requests.setdefault(name, value)
        for port in as_list(container.get("ports")):
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
    for volume in as_list(spec.get("volumes")):
        projected = as_dict(volume.get("projected")) if isinstance(volume, dict) else {}
        for source in as_list(projected.get("sources")):
            token = source.get("serviceAccountToken") if isinstance(source, dict) else None
            if isinstance(token, dict):
                token.setdefault("expirationSeconds", 3600)  # upstream's default (one hour)


def default_template(template: Any) -> None:
    """Defaults inside a pod template (``spec.template`` of workloads)."""
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        default_spec(template["spec"])


def qos_class(spec: Obj) -> str:
    containers = [c for c in as_list(spec.get("containers")) if isinstance(c, dict)]
    resources = [as_dict(c.get("resources")) for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        set(as_dict(r.get("limits"))) >= {"cpu", "memory"}
        and as_dict(r.get("requests")) == as_dict(r.get("limits"))
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _check_resources(requirements: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if requirements is None:
        return causes
    if not isinstance(requirements, dict):
        return [Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = type_causes(requirements, {"requests": dict, "limits": dict}, f"{path}.")
    if causes:
        return causes
    for section in ("requests", "limits"):
        for name, value in (requirements.get(section) or {}).items():
            try:
                if quantity.parse(value) < 0:
                    causes.append(
                        Cause(
                            f"{path}.{section}[{name}]",
                            f'Invalid value: "{value}": must be greater than or equal to 0',
                        )
                    )
            except quantity.QuantityError as exc:
                causes.append(Cause(f"{path}.{section}[{name}]", f'Invalid value: "{value}": {exc}'))
    limits, requests = requirements.get("limits") or {}, requirements.get("requests") or {}
    for name, request in requests.items():
        try:
            if name in limits and quantity.parse(request) > quantity.parse(limits[name]):
                causes.append(
                    Cause(
                        f"{path}.requests[{name}]",
                        f'Invalid value: "{request}": must be less than or equal to {name} limit of '
                        f"{limits[name]}",
                    )
                )
        except quantity.QuantityError:
            continue  # already reported above
    return causes


def _check_containers(containers: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for index, container in enumerate(containers):
        where = f"{path}[{index}]"
        if not isinstance(container, dict):
            causes.append(Cause(where, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        kinds = {"ports": list, "env": list, "command": list, "args": list, "image": str}
        causes += type_causes(container, kinds, f"{where}.")
        causes += unique_label(container.get("name"), where, seen)
        if not container.get("image"):
            causes.append(Cause(f"{where}.image", "Required value", "FieldValueRequired"))
        causes += _check_resources(container.get("resources"), f"{where}.resources")
    return causes


def check_spec(
    spec: Any, path: str = "spec", restart_policies: tuple[str, ...] = RESTART_POLICIES
) -> list[Cause]:
    """Causes for a bad pod spec (after defaulting); ``path`` is where the spec sits in the object."""
    if not isinstance(spec, dict):
        return [Cause(path, "Required value", "FieldValueRequired")]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [Cause(f"{path}.containers", "Required value", "FieldValueRequired")]
    causes = type_causes(
        spec,
        {"nodeSelector": dict, "tolerations": list, "affinity": dict, "volumes": list, "nodeName": str},
        f"{path}.",
    )
    if spec.get("affinity") is not None:
        causes += check_affinity(spec.get("affinity"), f"{path}.affinity")
    if spec.get("topologySpreadConstraints") is not None:
        causes += check_topology_spread(
            spec.get("topologySpreadConstraints"), f"{path}.topologySpreadConstraints"
        )
    causes += [
        Cause(f"{path}.tolerations[{i}]", "Invalid value: must be an object", "FieldValueTypeInvalid")
        for i, t in enumerate(as_list(spec.get("tolerations")))
        if not isinstance(t, dict)
    ]
    causes += _check_containers(containers, f"{path}.containers")
    causes += _check_init_containers(spec, path)
    policy = spec.get("restartPolicy")
    if policy not in restart_policies:
        supported = ", ".join(f'"{p}"' for p in restart_policies)
        causes.append(
            Cause(
                f"{path}.restartPolicy",
                f'Unsupported value: "{policy}": supported values: {supported}',
                "FieldValueNotSupported",
            )
        )
    causes += check_map_of_strings(spec.get("nodeSelector"), f"{path}.nodeSelector")
    causes += podvolumes.check(spec, path)
    return causes + check_names(spec, path) + podfields.check(spec, path)


def _check_init_containers(spec: Obj, path: str) -> list[Cause]:
    """upstream validateInitContainers: the container checks, names unique across both lists, and no
    probes or lifecycle hooks (an init container runs to completion; it is never ready)."""
    inits = spec.get("initContainers")
    if inits is None:
        return []
    if not isinstance(inits, list):
        return [Cause(f"{path}.initContainers", "Invalid value: must be a list", "FieldValueTypeInvalid")]
    where = f"{path}.initContainers"
    causes = _check_containers(inits, where)
    apps = {c.get("name") for c in as_list(spec.get("containers")) if isinstance(c, dict)}
    for index, container in enumerate(inits):
        if not isinstance(container, dict):
            continue
        if container.get("name") in apps:
            causes.append(
                Cause(
                    f"{where}[{index}].name", f'Duplicate value: "{container["name"]}"', "FieldValueDuplicate"
                )
            )
        causes += [
            Cause(
                f"{where}[{index}].{name}",
                "Forbidden: may not be set for init containers",
                "FieldValueForbidden",
            )
            for name in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe")
            if container.get(name)
        ]
    return causes


def _go_strings(values: list[Any]) -> str:
    """How upstream prints a list of strings in a message (Go's ``%#v``)."""
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


def _check_name(value: Any, path: str, label: bool) -> list[Cause]:
    """upstream ValidateDNS1123Label / ValidateDNS1123Subdomain of a name inside the spec."""
    limit, pattern, rule = (
        (63, DNS1123_LABEL, LABEL_MSG) if label else (253, DNS1123_SUBDOMAIN, SUBDOMAIN_MSG)
    )
    if not isinstance(value, str):
        return [Cause(path, "Invalid value: must be a string", "FieldValueTypeInvalid")]
    if len(value) > limit:
        return [Cause(path, f'Invalid value: "{value}": must be no more than {limit} characters')]
    return [] if pattern.match(value) else [Cause(path, f'Invalid value: "{value}": {rule}')]


def _check_ip(value: Any, path: str) -> list[Cause]:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return [Cause(path, f'Invalid value: "{value}": {_IP_MSG}')]
    return []


def _check_dns_config(config: Any, policy: Any, path: str) -> list[Cause]:
    """upstream validatePodDNSConfig: None needs nameservers; at most 3 of them; search limits."""
    if policy == "None" and config is None:
        return [
            Cause(
                path,
                "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
                "FieldValueRequired",
            )
        ]
    if config is None:
        return []
    if not isinstance(config, dict):
        return [Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = type_causes(config, {"nameservers": list, "searches": list, "options": list}, f"{path}.")
    if causes:
        return causes
    servers, searches = as_list(config.get("nameservers")), as_list(config.get("searches"))
    if policy == "None" and not servers:
        message = "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"
        return [Cause(f"{path}.nameservers", message, "FieldValueRequired")]
    if len(servers) > MAX_DNS_NAMESERVERS:
        message = f"must not have more than {MAX_DNS_NAMESERVERS} nameservers"
        causes.append(Cause(f"{path}.nameservers", f"Invalid value: {_go_strings(servers)}: {message}"))
    for index, server in enumerate(servers):
        causes += _check_ip(server, f"{path}.nameservers[{index}]")
    if len(searches) > MAX_DNS_SEARCH_PATHS:
        message = f"must not have more than {MAX_DNS_SEARCH_PATHS} search paths"
        causes.append(Cause(f"{path}.searches", f"Invalid value: {_go_strings(searches)}: {message}"))
    if len(" ".join(str(s) for s in searches)) > MAX_DNS_SEARCH_CHARS:
        message = (
            f"must not have more than {MAX_DNS_SEARCH_CHARS} characters (including spaces) in the search list"
        )
        causes.append(Cause(f"{path}.searches", f"Invalid value: {_go_strings(searches)}: {message}"))
    for index, search in enumerate(searches):
        trimmed = search.removesuffix(".") if isinstance(search, str) else search  # a trailing dot is fine
        causes += _check_name(trimmed, f"{path}.searches[{index}]", label=False)
    for index, option in enumerate(as_list(config.get("options"))):
        if not isinstance(option, dict) or not option.get("name"):
            causes.append(
                Cause(f"{path}.options[{index}]", "Required value: must not be empty", "FieldValueRequired")
            )
    return causes


def _check_host_aliases(aliases: Any, path: str) -> list[Cause]:
    """upstream ValidateHostAliases: an IP each, hostnames that are DNS subdomains."""
    if aliases is None:
        return []
    if not isinstance(aliases, list):
        return [Cause(path, "Invalid value: must be a list", "FieldValueTypeInvalid")]
    causes: list[Cause] = []
    for index, alias in enumerate(aliases):
        where = f"{path}[{index}]"
        if not isinstance(alias, dict):
            causes.append(Cause(where, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        if not alias.get("ip"):
            causes.append(Cause(f"{where}.ip", "Required value", "FieldValueRequired"))
        else:
            causes += _check_ip(alias["ip"], f"{where}.ip")
        hostnames = alias.get("hostnames")
        if hostnames is not None and not isinstance(hostnames, list):
            causes.append(
                Cause(f"{where}.hostnames", "Invalid value: must be a list", "FieldValueTypeInvalid")
            )
            continue
        for n, hostname in enumerate(as_list(hostnames)):
            causes += _check_name(hostname, f"{where}.hostnames[{n}]", label=False)
    return causes


def check_names(spec: Obj, path: str) -> list[Cause]:
    """The fields that decide a pod's names: dnsPolicy, dnsConfig, hostAliases, hostname, subdomain."""
    causes: list[Cause] = []
    policy = spec.get("dnsPolicy")
    if policy not in DNS_POLICIES:
        supported = ", ".join(f'"{p}"' for p in DNS_POLICIES)
        message = f'Unsupported value: "{policy}": supported values: {supported}'
        causes.append(Cause(f"{path}.dnsPolicy", message, "FieldValueNotSupported"))
    causes += _check_dns_config(spec.get("dnsConfig"), policy, f"{path}.dnsConfig")
    causes += _check_host_aliases(spec.get("hostAliases"), f"{path}.hostAliases")
    for name in ("hostname", "subdomain"):
        if spec.get(name):
            causes += _check_name(spec[name], f"{path}.{name}", label=True)
    return causes


def check_template(
    template: Any,
    selector: Any,
    path: str = "spec.template",
    restart_policies: tuple[str, ...] = RESTART_POLICIES,
) -> list[Cause]:
    """A workload's pod template: labels that its selector matches, and a valid pod spec."""
    if not isinstance(template, dict):
        return [Cause(path, "Required value", "FieldValueRequired")]
    meta = as_dict(template.get("metadata"))
    labels = meta.get("labels")
    causes = check_labels(labels, f"{path}.metadata.labels")
    causes += check_map_of_strings(meta.get("annotations"), f"{path}.metadata.annotations")
    matched = isinstance(labels, dict) and selector_matches(selector, labels)
    if isinstance(selector, dict) and not causes and not matched:
        shown = ", ".join(f'"{k}":"{v}"' for k, v in sorted(as_dict(labels).items()))
        mismatch = "`selector` does not match template `labels`"
        causes.append(
            Cause(f"{path}.metadata.labels", f"Invalid value: map[string]string{{{shown}}}: {mismatch}")
        )
    return causes + check_spec(template.get("spec"), f"{path}.spec", restart_policies)
