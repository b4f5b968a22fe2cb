"""v1 Endpoints: the addresses and ports behind a Service, as the endpoints controller finds them.

The lab's consumers (``nestlab-proxy``, ``nestlab-dns``) read EndpointSlices; Endpoints are kept
because ``kubectl get endpoints`` and ``kubectl describe svc`` show them, and because a Service
without a selector (``kubernetes``, ``kube-dns``) gets its addresses written here and mirrored
into a slice, as upstream's mirroring controller does. Validation and the ENDPOINTS column
follow upstream (``ValidateEndpoints``, printers.go ``formatEndpoints``).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from nestlab.api.kinds.base import AGE, NAME, READ, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import DNS1123_LABEL, LABEL_MSG, as_dict, as_list, check_metadata, type_causes
from nestlab.api.kinds.printing import created
from nestlab.api.kinds.servicespec import check_ip, check_port_number
from nestlab.api.status import Cause

RESOURCE = Resource("endpoints", "endpoints", "Endpoints", "", "v1", True, ("ep",))
PROTOCOLS = ("SCTP", "TCP", "UDP")
_SHOWN = 3  # kubectl shows three endpoints, then "+ N more..."


def default(endpoints: Obj) -> None:
    for subset in as_list(endpoints.get("subsets")):
        for port in as_list(as_dict(subset).get("ports")):
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def check_address(address: Any, path: str) -> list[Cause]:
    """An EndpointAddress: a valid IP outside loopback and link-local, a DNS-label hostname."""
    if not isinstance(address, dict):
        return [Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = type_causes(address, {"hostname": str, "nodeName": str, "targetRef": dict}, f"{path}.")
    ip = address.get("ip")
    causes += check_ip(ip, f"{path}.ip")
    if not causes:
        parsed = ipaddress.ip_address(str(ip))
        if parsed.is_loopback:
            causes.append(Cause(f"{path}.ip", f'Invalid value: "{ip}": may not be in the loopback range '
                                "(127.0.0.0/8, ::1/128)"))  # fmt: skip
        elif parsed.is_link_local:
            causes.append(Cause(f"{path}.ip", f'Invalid value: "{ip}": may not be in the link-local range '
                                "(169.254.0.0/16, fe80::/10)"))  # fmt: skip
    hostname = address.get("hostname")
    if isinstance(hostname, str) and hostname and not DNS1123_LABEL.match(hostname):
        causes.append(Cause(f"{path}.hostname", f'Invalid value: "{hostname}": {LABEL_MSG}'))
    return causes


def check_ports(ports: Any, path: str, *, in_slice: bool = False) -> list[Cause]:
    """EndpointPorts: unique names (required when several, except in a slice), protocol and port number
    as upstream (a slice's port may be absent: all ports)."""
    causes: list[Cause] = []
    names: set[str] = set()
    items = as_list(ports)
    for index, port in enumerate(items):
        where = f"{path}[{index}]"
        if not isinstance(port, dict):
            causes.append(Cause(where, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        name = port.get("name") or ""
        if len(items) > 1 and not name and not in_slice:
            causes.append(Cause(f"{where}.name", "Required value", "FieldValueRequired"))
        elif name:
            if not isinstance(name, str) or not DNS1123_LABEL.match(name) or len(name) > 63:
                causes.append(Cause(f"{where}.name", f'Invalid value: "{name}": {LABEL_MSG}'))
            elif name in names:
                causes.append(Cause(f"{where}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
            names.add(str(name))
        protocol = port.get("protocol")
        if protocol not in PROTOCOLS:
            supported = ", ".join(f'"{p}"' for p in PROTOCOLS)
            message = f'Unsupported value: "{protocol}": supported values: {supported}'
            causes.append(Cause(f"{where}.protocol", message, "FieldValueNotSupported"))
        if not in_slice or port.get("port") is not None:
            causes += check_port_number(port.get("port"), f"{where}.port")
    return causes


def validate(endpoints: Obj) -> list[Cause]:
    causes = check_metadata(endpoints)
    subsets = endpoints.get("subsets")
    if subsets is not None and not isinstance(subsets, list):
        return [*causes, Cause("subsets", "Invalid value: must be a list", "FieldValueTypeInvalid")]
    for index, subset in enumerate(as_list(subsets)):
        path = f"subsets[{index}]"
        if not isinstance(subset, dict):
            causes.append(Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        for field in ("addresses", "notReadyAddresses"):
            for position, address in enumerate(as_list(subset.get(field))):
                causes += check_address(address, f"{path}.{field}[{position}]")
        causes += check_ports(subset.get("ports"), f"{path}.ports")
    return causes


def endpoints_text(endpoints: Obj) -> str:
    """The ENDPOINTS column (upstream ``formatEndpoints``): ``ip:port,...`` then ``+ N more...``."""
    subsets = as_list(endpoints.get("subsets"))
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for subset in subsets:
        ips = [str(a.get("ip")) for a in as_list(as_dict(subset).get("addresses")) if isinstance(a, dict)]
        ports = [p for p in as_list(as_dict(subset).get("ports")) if isinstance(p, dict)]
        targets = list(ips) if not ports else [
            f"[{ip}]:{p.get('port')}" if ":" in ip else f"{ip}:{p.get('port')}" for p in ports for ip in ips
        ]  # fmt: skip
        count += len(targets)
        shown += targets[: _SHOWN - len(shown)]
    text = ",".join(shown)
    return f"{text} + {count - _SHOWN} more..." if count > _SHOWN else text


def row(endpoints: Obj) -> list[Any]:
    return [endpoints["metadata"]["name"], endpoints_text(endpoints), created(endpoints)]


KIND = Kind(
    RESOURCE,
    model="V1Endpoints",
    default=default,
    validate=validate,
    columns=(NAME, Column("Endpoints", "string", 0, "Endpoints of the service."), AGE),
    row=row,
    # Writing Endpoints is not part of edit/admin since CVE-2021-25740 (upstream 1.22): the
    # controllers own them. Node proxies read them.
    roles={"view": {"endpoints": READ}, "edit": {"endpoints": READ}, "node": {"endpoints": READ}},
)
