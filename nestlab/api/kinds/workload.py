"""What the replicated workload kinds share: replica and int-or-percent checks, printer cells, role verbs.

Deployment, ReplicaSet, ReplicationController and StatefulSet all carry ``spec.replicas``, a
selector and a pod template, and all serve ``/scale``; the rules and columns they have in common
are written once here so each kind's unit holds only what is its own.
"""

from __future__ import annotations

import re
from typing import Any

from nestlab.api.kinds import podspec
from nestlab.api.kinds.base import READ, WRITE, Obj, Roles
from nestlab.api.kinds.common import check_label_selector, check_nonnegative
from nestlab.api.kinds.printing import images, label_selector_text
from nestlab.api.status import Cause

_PERCENT = re.compile(r"^[0-9]+%$")


_PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex "
    "used for validation is '[0-9]+%')"
)


def int_or_percent(value: Any, path: str) -> list[Cause]:
    """An IntOrString that must be a non-negative integer or a percentage ("25%")."""
    message = ""
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return [
            Cause(
                path, "Invalid value: must be an integer or percentage (e.g. '5%')", "FieldValueTypeInvalid"
            )
        ]
    if isinstance(value, str) and not _PERCENT.match(value):
        message = f'Invalid value: "{value}": {_PERCENT_MSG}'
    elif isinstance(value, str) and int(value[:-1]) > 100:
        message = f'Invalid value: "{value}": must not be greater than 100%'
    elif isinstance(value, int) and value < 0:
        message = f"Invalid value: {value}: must be greater than or equal to 0"
    return [Cause(path, message)] if message else []


def is_zero(value: Any) -> bool:
    """Whether an IntOrString is 0 or 0%."""
    return value in (0, "0%")


def selector_text(obj: Obj) -> str:
    """The ``/scale`` status.selector and Selector column: a LabelSelector (or RC map) as text."""
    selector = (obj.get("spec") or {}).get("selector")
    if isinstance(selector, dict) and not ({"matchLabels", "matchExpressions"} & set(selector)) and selector:
        return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    text = label_selector_text(selector)
    return "" if text == "<none>" else text


def template_cells(obj: Obj) -> list[Any]:
    """The -o wide cells: containers, images, selector."""
    containers, pictures = images((obj.get("spec") or {}).get("template"))
    return [containers, pictures, selector_text(obj) or "<none>"]


def count(obj: Obj, field: str) -> int:
    value = (obj.get("status") or {}).get(field)
    return int(value) if isinstance(value, int) else 0


def desired(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return int(value) if isinstance(value, int) else 0


def roles(plural: str) -> Roles:
    """view reads the workload, its status and scale; edit (and admin) also change it and scale it."""
    read = {plural: READ, f"{plural}/status": READ, f"{plural}/scale": READ}
    return {
        "view": read,
        "edit": {**read, plural: READ | WRITE, f"{plural}/scale": READ | {"update", "patch"}},
    }


def check_replicated(spec: Obj, kind: str) -> list[Cause]:
    """What every replicated workload's spec must hold: non-negative replicas and minReadySeconds, a
    non-empty selector, and a template whose labels it matches and whose pods restart Always."""
    causes = check_nonnegative(spec.get("replicas"), "spec.replicas")
    causes += check_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    selector = spec.get("selector")
    causes += check_label_selector(selector, "spec.selector", required=True)
    if (
        isinstance(selector, dict)
        and not selector.get("matchLabels")
        and not selector.get("matchExpressions")
    ):
        causes.append(Cause("spec.selector", f"Invalid value: empty selector is invalid for {kind}"))
    return causes + podspec.check_template(spec.get("template"), selector, restart_policies=("Always",))
