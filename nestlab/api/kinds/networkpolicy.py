"""networking.k8s.io/v1 NetworkPolicy: which traffic may reach and leave the pods it selects.

This is the lab's NSX distributed firewall: every host's ``nestlab-proxy`` compiles the policies
into nftables rules on its pod bridge (:mod:`nestlab.proxy.policy`). The unit keeps upstream's
defaults (``policyTypes`` from the rules present, ``protocol: TCP``) and its validation
(pkg/apis/networking/validation): selectors, ``ipBlock`` CIDRs with ``except`` inside them, port
numbers or IANA names, ``endPort`` only after a numeric ``port``, and peers that are either an
``ipBlock`` or selectors. Named ports are resolved per pod from its ``containers[].ports``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from nestlab.api.kinds.base import AGE, NAME, READ, WRITE, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, as_list, check_label_selector, check_metadata, type_causes
from nestlab.api.kinds.printing import created, label_selector_text
from nestlab.api.kinds.wiremeta import IGNORE, LABEL_SELECTOR, OBJECT_META, Schema, listed
from nestlab.api.status import Cause

RESOURCE = Resource(
    "networkpolicies", "networkpolicy", "NetworkPolicy", "networking.k8s.io", "v1", True, ("netpol",)
)
POLICY_TYPES = ("Ingress", "Egress")
PROTOCOLS = ("TCP", "UDP", "SCTP")
_PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"
_CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"

# -- protobuf (k8s.io/api networking/v1 generated.proto) ------------------------------------------
_PORT: Schema = {1: ("protocol", "str"), 2: ("port", "intstr"), 3: ("endPort", "int")}
_PEER: Schema = {
    1: ("podSelector", LABEL_SELECTOR),
    2: ("namespaceSelector", LABEL_SELECTOR),
    3: ("ipBlock", {1: ("cidr", "str"), 2: ("except", "strs")}),
}
SPEC: Schema = {
    1: ("podSelector", LABEL_SELECTOR),
    2: ("ingress", listed({1: ("ports", listed(_PORT)), 2: ("from", listed(_PEER))})),
    3: ("egress", listed({1: ("ports", listed(_PORT)), 2: ("to", listed(_PEER))})),
    4: ("policyTypes", "strs"),
}
PROTOBUF: Schema = {1: ("metadata", OBJECT_META), 2: ("spec", SPEC), 3: ("status", IGNORE)}
"""Field 3 held the alpha NetworkPolicyStatus (removed in 1.28); old encoders may still send it."""


def _rules(spec: Obj, direction: str) -> list[Obj]:
    return [rule for rule in as_list(spec.get(direction)) if isinstance(rule, dict)]


def default(policy: Obj) -> None:
    """Upstream SetDefaults: an empty podSelector, protocol TCP, policyTypes from the rules present."""
    if policy.get("spec") is None:
        policy["spec"] = {}
    spec = policy["spec"]
    if not isinstance(spec, dict):
        return
    if spec.get("podSelector") is None:
        spec["podSelector"] = {}
    for direction in ("ingress", "egress"):
        for rule in _rules(spec, direction):
            for port in as_list(rule.get("ports")):
                if isinstance(port, dict) and port.get("protocol") is None:
                    port["protocol"] = "TCP"
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def port_name_problems(name: str) -> list[str]:
    """Upstream IsValidPortName (an IANA service name): every reason ``name`` is not one."""
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARS.match(name):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    elif not re.search("[a-z]", name):
        problems.append("must contain at least one letter (a-z)")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return problems


def _check_port(port: Any, path: str) -> list[Cause]:
    if not isinstance(port, dict):
        return [Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = type_causes(port, {"protocol": str, "endPort": int}, f"{path}.")
    protocol, number, end = port.get("protocol"), port.get("port"), port.get("endPort")
    if isinstance(protocol, str) and protocol not in PROTOCOLS:
        supported = ", ".join(f'"{p}"' for p in PROTOCOLS)
        message = f'Unsupported value: "{protocol}": supported values: {supported}'
        causes.append(Cause(f"{path}.protocol", message, "FieldValueNotSupported"))
    return causes or _check_port_number(number, end, path)


def _check_port_number(number: Any, end: Any, path: str) -> list[Cause]:
    """``port`` (a number or an IANA name) and ``endPort`` (only after a numeric ``port``)."""
    causes = []
    if number is None:
        if end is not None:
            message = f"Invalid value: {end}: may not be specified when `port` is not specified"
            causes.append(Cause(f"{path}.endPort", message))
    elif isinstance(number, int) and not isinstance(number, bool):
        if not 1 <= number <= 65535:
            causes.append(Cause(f"{path}.port", f"Invalid value: {number}: {_PORT_RANGE_MSG}"))
        if end is not None:
            if end < number:
                message = f"Invalid value: {end}: must be greater than or equal to `port`"
                causes.append(Cause(f"{path}.endPort", message))
            if not 1 <= end <= 65535:
                causes.append(Cause(f"{path}.endPort", f"Invalid value: {end}: {_PORT_RANGE_MSG}"))
    elif isinstance(number, str):
        if end is not None:
            message = f"Invalid value: {end}: may not be specified when `port` is non-numeric"
            causes.append(Cause(f"{path}.endPort", message))
        causes += [
            Cause(f"{path}.port", f'Invalid value: "{number}": {problem}')
            for problem in port_name_problems(number)
        ]
    else:
        message = "Invalid value: must be an integer or a string"
        causes.append(Cause(f"{path}.port", message, "FieldValueTypeInvalid"))
    return causes


def _network(text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR as upstream's ParseCIDRSloppy reads it (host bits allowed), or None."""
    if not isinstance(text, str) or "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _check_ip_block(block: Any, path: str) -> list[Cause]:
    if not isinstance(block, dict):
        return [Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    cidr = block.get("cidr")
    if not cidr:
        return [Cause(f"{path}.cidr", "Required value", "FieldValueRequired")]
    network = _network(cidr)
    if network is None:
        return [Cause(f"{path}.cidr", f'Invalid value: "{cidr}": {_CIDR_MSG}')]
    excepts = block.get("except")
    if excepts is not None and not isinstance(excepts, list):
        return [Cause(f"{path}.except", "Invalid value: must be a list", "FieldValueTypeInvalid")]
    causes = []
    for index, text in enumerate(as_list(excepts)):
        where = f"{path}.except[{index}]"
        inner = _network(text)
        if inner is None:
            causes.append(Cause(where, f'Invalid value: "{text}": {_CIDR_MSG}'))
        elif (
            inner.version != network.version
            or inner.network_address not in network
            or inner.prefixlen <= network.prefixlen
        ):
            causes.append(Cause(where, f'Invalid value: "{text}": must be a strict subset of `cidr`'))
    return causes


def _check_peer(peer: Any, path: str) -> list[Cause]:
    if not isinstance(peer, dict):
        return [Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    present = [key for key in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(key) is not None]
    causes = check_label_selector(peer.get("podSelector"), f"{path}.podSelector")
    causes += check_label_selector(peer.get("namespaceSelector"), f"{path}.namespaceSelector")
    if peer.get("ipBlock") is not None:
        causes += _check_ip_block(peer["ipBlock"], f"{path}.ipBlock")
    if not present:
        causes.append(Cause(path, "Required value: must specify a peer", "FieldValueRequired"))
    elif len(present) > 1 and "ipBlock" in present:
        message = "Forbidden: may not specify both ipBlock and another peer"
        causes.append(Cause(path, message, "FieldValueForbidden"))
    return causes


def _check_rules(spec: Obj, direction: str, peers: str) -> list[Cause]:
    rules = spec.get(direction)
    if rules is None:
        return []
    if not isinstance(rules, list):
        return [Cause(f"spec.{direction}", "Invalid value: must be a list", "FieldValueTypeInvalid")]
    causes: list[Cause] = []
    for index, rule in enumerate(rules):
        where = f"spec.{direction}[{index}]"
        if not isinstance(rule, dict):
            causes.append(Cause(where, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        shapes = type_causes(rule, {"ports": list, peers: list}, f"{where}.")
        if shapes:
            causes += shapes
            continue
        for number, port in enumerate(as_list(rule.get("ports"))):
            causes += _check_port(port, f"{where}.ports[{number}]")
        for number, peer in enumerate(as_list(rule.get(peers))):
            causes += _check_peer(peer, f"{where}.{peers}[{number}]")
    return causes


def _check_policy_types(types: Any) -> list[Cause]:
    if types is None:
        return []
    if not isinstance(types, list):
        return [Cause("spec.policyTypes", "Invalid value: must be a list", "FieldValueTypeInvalid")]
    if len(types) > len(POLICY_TYPES):
        shown = ", ".join(f'"{t}"' for t in types)
        message = (
            f"Invalid value: []networking.PolicyType{{{shown}}}: may not specify more than two policyTypes"
        )
        return [Cause("spec.policyTypes", message)]
    supported = ", ".join(f'"{t}"' for t in POLICY_TYPES)
    return [
        Cause(
            f"spec.policyTypes[{index}]",
            f'Unsupported value: "{kind}": supported values: {supported}',
            "FieldValueNotSupported",
        )
        for index, kind in enumerate(types)
        if kind not in POLICY_TYPES
    ]


def validate(policy: Obj) -> list[Cause]:
    causes = check_metadata(policy)
    spec = policy.get("spec")
    if not isinstance(spec, dict):
        return [*causes, Cause("spec", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes += check_label_selector(spec.get("podSelector"), "spec.podSelector")
    causes += _check_rules(spec, "ingress", "from")
    causes += _check_rules(spec, "egress", "to")
    return causes + _check_policy_types(spec.get("policyTypes"))


def row(policy: Obj) -> list[Any]:
    spec = as_dict(policy.get("spec"))
    return [policy["metadata"]["name"], label_selector_text(spec.get("podSelector")), created(policy)]


KIND = Kind(
    RESOURCE,
    model="V1NetworkPolicy",
    default=default,
    validate=validate,
    columns=(
        NAME,
        Column(
            "Pod-Selector",
            "string",
            0,
            "podSelector selects the pods to which this NetworkPolicy object applies.",
        ),
        AGE,
    ),
    row=row,
    roles={
        "view": {"networkpolicies": READ},
        "edit": {"networkpolicies": READ | WRITE},
        "node": {"networkpolicies": READ},
    },
    generation=True,
    protobuf=PROTOBUF,
)
