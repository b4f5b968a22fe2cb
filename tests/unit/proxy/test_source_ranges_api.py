"""The source-ranges annotation at the API: validated as upstream, so what the proxies read is sane.

``service.beta.kubernetes.io/load-balancer-source-ranges`` is honoured (by the host proxies and the
edge) when ``spec.loadBalancerSourceRanges`` is empty; upstream's ValidateService refuses it on a
Service that is not a LoadBalancer and refuses an entry that is not an IP range.
"""

from __future__ import annotations

import copy
from typing import Any

from nestlab.api.kinds import service
from nestlab.api.kinds.servicespec import SOURCE_RANGES_ANNOTATION
from nestlab.api.status import Cause
from nestlab.proxy.desired import SOURCE_RANGES_ANNOTATION as READ_BY_THE_PROXY

Obj = dict[str, Any]
PATH = f"metadata.annotations[{SOURCE_RANGES_ANNOTATION}]"


def annotated(value: str, kind: str = "LoadBalancer") -> Obj:
    return {
        "metadata": {"name": "web", "annotations": {SOURCE_RANGES_ANNOTATION: value}},
        "spec": {"type": kind, "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }


def causes(obj: Obj) -> list[Cause]:
    obj = copy.deepcopy(obj)
    service.default(obj)
    return service.validate(obj)


def test_the_proxies_read_the_annotation_the_api_validates() -> None:
    assert (
        READ_BY_THE_PROXY
        == SOURCE_RANGES_ANNOTATION
        == "service.beta.kubernetes.io/load-balancer-source-ranges"
    )


def test_well_formed_ranges_on_a_load_balancer_are_accepted() -> None:
    assert causes(annotated("10.0.0.0/8, 192.168.1.0/24")) == []
    assert causes(annotated("  ")) == []  # empty: no restriction, as upstream


def test_a_bad_range_is_refused_naming_the_annotation() -> None:
    (cause,) = causes(annotated("10.0.0.0/8,10.1.0.0/33"))
    assert cause.field == PATH
    assert cause.message == (
        'Invalid value: "10.1.0.0/33": must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 '
    )


def test_only_a_load_balancer_may_carry_it() -> None:
    (cause,) = causes(annotated("10.0.0.0/8", kind="ClusterIP"))
    assert cause.field == PATH
    assert cause.message == "Forbidden: may only be used when `type` is 'LoadBalancer'"
