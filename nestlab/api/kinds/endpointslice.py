"""discovery.k8s.io/v1 EndpointSlice: what the lab's service proxy and DNS read to reach a Service's pods.

Every host's ``nestlab-proxy`` (the NSX distributed load balancer's part) and ``nestlab-dns``
watch slices, and ``conditions.ready`` decides whether an endpoint gets traffic. The lab's
Services are IPv4 only, so ``addressType`` IPv6 and FQDN are refused by name. Validation and the
columns follow upstream (``ValidateEndpointSlice``, printers.go ``printEndpointSlice``).
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds.base import AGE, NAME, READ, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import (
    DNS1123_LABEL,
    LABEL_MSG,
    as_dict,
    as_list,
    check_metadata,
    immutable,
    type_causes,
)
from nestlab.api.kinds.endpoints import check_ports
from nestlab.api.kinds.printing import created
from nestlab.api.kinds.servicespec import check_ip
from nestlab.api.status import Cause

RESOURCE = Resource("endpointslices", "endpointslice", "EndpointSlice", "discovery.k8s.io", "v1", True)
ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
_MAX_ENDPOINTS = 1000  # upstream maxEndpoints
_MAX_ADDRESSES = 100  # upstream maxAddresses per endpoint
_MAX_PORTS = 20000  # upstream maxPorts
_SHOWN = 3  # kubectl shows three, then "+ N more..."


def default(slice_: Obj) -> None:
    for port in as_list(slice_.get("ports")):
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _check_address_type(kind: Any) -> list[Cause]:
    if kind is None or kind == "":
        return [Cause("addressType", "Required value", "FieldValueRequired")]
    if kind in ("IPv6", "FQDN"):
        message = f"Forbidden: addressType {kind} is not supported by this lab: its Services are IPv4 only"
        return [Cause("addressType", message, "FieldValueForbidden")]
    if kind != "IPv4":
        supported = ", ".join(f'"{t}"' for t in ADDRESS_TYPES)
        message = f'Unsupported value: "{kind}": supported values: {supported}'
        return [Cause("addressType", message, "FieldValueNotSupported")]
    return []


def _check_endpoint(endpoint: Any, path: str) -> list[Cause]:
    if not isinstance(endpoint, dict):
        return [Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = type_causes(endpoint, {"hostname": str, "nodeName": str, "zone": str, "targetRef": dict},
                         f"{path}.")  # fmt: skip
    if endpoint.get("hints"):  # stored and ignored would tell a learner topology routing happens
        message = ("Forbidden: hints (topology-aware routing) are not supported by this lab: "
                   "nestlab-proxy spreads connections over every ready endpoint")  # fmt: skip
        causes.append(Cause(f"{path}.hints", message, "FieldValueForbidden"))
    conditions = endpoint.get("conditions")
    causes += type_causes(as_dict(conditions), {"ready": bool, "serving": bool, "terminating": bool},
                          f"{path}.conditions.")  # fmt: skip
    addresses = endpoint.get("addresses")
    if not isinstance(addresses, list) or not addresses:
        causes.append(Cause(f"{path}.addresses", "Required value: must contain at least 1 address",
                            "FieldValueRequired"))  # fmt: skip
    elif len(addresses) > _MAX_ADDRESSES:
        causes.append(Cause(f"{path}.addresses", f"Too many: {len(addresses)}: must have at most "
                            f"{_MAX_ADDRESSES} items", "FieldValueTooMany"))  # fmt: skip
    for index, address in enumerate(as_list(addresses)):
        where = f"{path}.addresses[{index}]"
        if check_ip(address, where) or ":" in str(address):
            causes.append(Cause(where, f'Invalid value: "{address}": must be a valid IPv4 address'))
    hostname = endpoint.get("hostname")
    if isinstance(hostname, str) and hostname and not DNS1123_LABEL.match(hostname):
        causes.append(Cause(f"{path}.hostname", f'Invalid value: "{hostname}": {LABEL_MSG}'))
    return causes


def validate(slice_: Obj) -> list[Cause]:
    causes = check_metadata(slice_) + _check_address_type(slice_.get("addressType"))
    endpoints, ports = slice_.get("endpoints"), slice_.get("ports")
    if endpoints is not None and not isinstance(endpoints, list):
        causes.append(Cause("endpoints", "Invalid value: must be a list", "FieldValueTypeInvalid"))
    elif len(as_list(endpoints)) > _MAX_ENDPOINTS:
        causes.append(Cause("endpoints", f"Too many: {len(as_list(endpoints))}: must have at most "
                            f"{_MAX_ENDPOINTS} items", "FieldValueTooMany"))  # fmt: skip
    for index, endpoint in enumerate(as_list(endpoints)):
        causes += _check_endpoint(endpoint, f"endpoints[{index}]")
    if ports is not None and not isinstance(ports, list):
        causes.append(Cause("ports", "Invalid value: must be a list", "FieldValueTypeInvalid"))
    elif len(as_list(ports)) > _MAX_PORTS:
        causes.append(Cause("ports", f"Too many: {len(as_list(ports))}: must have at most {_MAX_PORTS} "
                            "items", "FieldValueTooMany"))  # fmt: skip
    return causes + check_ports(ports, "ports", in_slice=True)


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    return immutable(new.get("addressType"), old.get("addressType"), "addressType")


def _more(shown: list[str], count: int) -> str:
    """Upstream ``listWithMoreString``."""
    text = ",".join(shown)
    if count > _SHOWN:
        return f"{text} + {count - _SHOWN} more..."
    return text or "<unset>"


def ports_text(slice_: Obj) -> str:
    ports = [p for p in as_list(slice_.get("ports")) if isinstance(p, dict)]
    shown = [str(p["port"]) if p.get("port") is not None else str(p.get("name") or "*") for p in ports]
    return _more(shown[:_SHOWN], len(shown))


def endpoints_text(slice_: Obj) -> str:
    addresses = [
        str(address)
        for endpoint in as_list(slice_.get("endpoints"))
        for address in as_list(as_dict(endpoint).get("addresses"))
    ]
    return _more(addresses[:_SHOWN], len(addresses))


def row(slice_: Obj) -> list[Any]:
    return [
        slice_["metadata"]["name"],
        slice_.get("addressType", ""),
        ports_text(slice_),
        endpoints_text(slice_),
        created(slice_),
    ]


KIND = Kind(
    RESOURCE,
    model="V1EndpointSlice",
    default=default,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column(
            "AddressType",
            "string",
            0,
            "addressType specifies the type of address carried by this EndpointSlice.",
        ),
        Column(
            "Ports",
            "string",
            0,
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        Column("Endpoints", "string", 0, "endpoints is a list of unique endpoints in this slice."),
        AGE,
    ),
    row=row,
    roles={
        "view": {"endpointslices": READ},
        "edit": {"endpointslices": READ},
        "node": {"endpointslices": READ},
    },
)
