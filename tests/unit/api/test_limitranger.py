"""LimitRange (defaults, upstream validation messages) and the LimitRanger admission on a fake etcd:
defaults filled before quota charges the pod, upstream's 403 wording for min/max/ratio, claims."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api import limitranger
from nestlab.api import resources as r
from nestlab.api.kinds import limitrange
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd
from tests.unit.api.test_registry import run

Obj = dict[str, Any]


def ranged(*limits: Obj, name: str = "limits") -> Obj:
    return {"metadata": {"name": name}, "spec": {"limits": list(limits)}}


def container(name: str = "c", **resources: Obj) -> Obj:
    return {"name": name, "image": "busybox:1.36", "resources": resources}


def pod(*containers: Obj, name: str = "web", inits: tuple[Obj, ...] = ()) -> Obj:
    spec: Obj = {"containers": list(containers) or [container()]}
    if inits:
        spec["initContainers"] = list(inits)
    return {"metadata": {"name": name}, "spec": spec}


def causes(obj: Obj) -> list[str]:
    limitrange.default(obj)
    return [f"{c.field}: {c.message}" for c in limitrange.validate(obj)]


async def registry_with(*ranges: Obj) -> Registry:
    store = Store(FakeEtcd())  # type: ignore[arg-type]
    mutate, validate = limitranger.hooks(store)
    registry = Registry(store, mutating=(mutate,), validating=(validate,))
    await registry.create(r.NAMESPACES, "", {"metadata": {"name": "demo"}})
    for item in ranges:
        await registry.create(r.LIMITRANGES, "demo", item)
    return registry


def test_container_defaults_fall_back_like_upstream() -> None:
    item = ranged({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}})
    limitrange.default(item)
    limits = item["spec"]["limits"][0]
    assert limits["default"] == {"cpu": "2"}
    assert limits["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}},
            'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1',
        ),
        (
            {"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "1"}},
            'spec.limits[0].defaultRequest[cpu]: Invalid value: "1": default request value 1 is greater '
            "than default limit value 500m",
        ),
        (
            {"type": "Container", "default": {"memory": "2Gi"}, "max": {"memory": "1Gi"}},
            'spec.limits[0].default[memory]: Invalid value: "1Gi": default value 2Gi is greater than max value 1Gi',
        ),
        (
            {"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}},
            'spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "500m": ratio 500m is less than 1',
        ),
        (
            {
                "type": "Container",
                "min": {"cpu": "1"},
                "max": {"cpu": "2"},
                "maxLimitRequestRatio": {"cpu": "3"},
            },
            'spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "3": ratio 3 is greater than max/min = 2.000000',
        ),
        (
            {"type": "Pod", "default": {"cpu": "1"}},
            "spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'",
        ),
        (
            {"type": "PersistentVolumeClaim", "default": {"storage": "1Gi"}},
            "spec.limits[0].limits: Required value: either minimum or maximum storage value is required, "
            "but neither was provided",
        ),
        (
            {"type": "Node", "max": {"cpu": "1"}},
            'spec.limits[0].type: Invalid value: "Node": must be a standard limit type or fully qualified',
        ),
        (
            {"type": "Container", "max": {"gpu": "1"}},
            'spec.limits[0].max[gpu]: Invalid value: "gpu": must be a standard resource for containers',
        ),
    ],
)
def test_validation_words_it_as_upstream(item: Obj, expected: str) -> None:
    assert expected in causes(ranged(item))


def test_a_type_twice_and_a_sound_range() -> None:
    twice = ranged({"type": "Pod", "max": {"cpu": "4"}}, {"type": "Pod", "max": {"cpu": "2"}})
    assert 'spec.limits[1].type: Duplicate value: "Pod"' in causes(twice)
    sound = ranged(
        {
            "type": "Container",
            "default": {"cpu": "500m"},
            "defaultRequest": {"cpu": "100m"},
            "max": {"cpu": "1"},
        },
        {"type": "PersistentVolumeClaim", "max": {"storage": "10Gi"}},
    )
    assert causes(sound) == []


def test_defaults_are_filled_and_annotated_then_quota_charges_them() -> None:
    async def scenario() -> None:
        defaults = {
            "type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "250m"},
        }
        registry = await registry_with(ranged(defaults))
        quota = {"metadata": {"name": "q"}, "spec": {"hard": {"requests.cpu": "1", "limits.memory": "1Gi"}}}
        await registry.create(r.QUOTAS, "demo", quota)
        made = await registry.create(r.PODS, "demo", pod(container(), inits=(container("init"),)))
        assert made["spec"]["containers"][0]["resources"] == {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        }
        assert made["spec"]["initContainers"][0]["resources"]["limits"]["cpu"] == "500m"
        assert made["metadata"]["annotations"][limitranger.ANNOTATION] == (
            "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c; "
            "cpu, memory request for init container init; cpu, memory limit for init container init"
        )
        charged = await registry.get(r.QUOTAS, "demo", "q")
        assert charged["status"]["used"]["requests.cpu"] == "250m"
        assert charged["status"]["used"]["limits.memory"] == "256Mi"

    run(scenario())


def test_what_a_container_names_is_kept() -> None:
    async def scenario() -> None:
        registry = await registry_with(ranged({"type": "Container", "default": {"cpu": "1"}}))
        made = await registry.create(r.PODS, "demo", pod(container(limits={"cpu": "300m"})))
        assert made["spec"]["containers"][0]["resources"] == {
            "limits": {"cpu": "300m"},
            "requests": {"cpu": "300m"},
        }
        assert limitranger.ANNOTATION not in (made["metadata"].get("annotations") or {})

    run(scenario())


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            {"requests": {"cpu": "50m"}, "limits": {"cpu": "200m"}},
            'pods "web" is forbidden: minimum cpu usage per Container is 100m, but request is 50m',
        ),
        (
            {"requests": {"cpu": "1"}, "limits": {"cpu": "3"}},
            'pods "web" is forbidden: maximum cpu usage per Container is 2, but limit is 3',
        ),
        (
            {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}},
            'pods "web" is forbidden: cpu max limit to request ratio per Container is 4, but provided ratio is 10.000000',
        ),
    ],
)
def test_bounds_refuse_with_upstream_403(resources: Obj, message: str) -> None:
    async def scenario() -> None:
        bounds = {
            "type": "Container",
            "min": {"cpu": "100m"},
            "max": {"cpu": "2"},
            "maxLimitRequestRatio": {"cpu": "4"},
        }
        registry = await registry_with(ranged(bounds))
        with pytest.raises(ApiError) as refused:
            await registry.create(r.PODS, "demo", pod(container(**resources)))
        assert refused.value.code == 403
        assert refused.value.message == message

    run(scenario())


def test_several_breaches_are_one_aggregate_and_pod_items_sum_containers() -> None:
    async def scenario() -> None:
        registry = await registry_with(ranged({"type": "Pod", "max": {"cpu": "1", "memory": "1Gi"}}))
        two = pod(
            container("a", limits={"cpu": "600m", "memory": "512Mi"}),
            container("b", limits={"cpu": "600m", "memory": "1Gi"}),
        )
        with pytest.raises(ApiError) as refused:
            await registry.create(r.PODS, "demo", two)
        assert refused.value.message == (
            'pods "web" is forbidden: [maximum cpu usage per Pod is 1, but limit is 1200m, '
            "maximum memory usage per Pod is 1Gi, but limit is 1536Mi]"
        )
        one = pod(container("a", limits={"cpu": "600m", "memory": "512Mi"}), name="small")
        assert (await registry.create(r.PODS, "demo", one))["metadata"]["name"] == "small"

    run(scenario())


def test_claims_are_bounded_on_create_and_resize() -> None:
    async def scenario() -> None:
        registry = await registry_with(ranged({"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"}}))
        claim = {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
        }
        with pytest.raises(ApiError) as refused:
            await registry.create(r.PERSISTENTVOLUMECLAIMS, "demo", claim)
        assert refused.value.message == (
            'persistentvolumeclaims "data" is forbidden: maximum storage usage per PersistentVolumeClaim '
            "is 2Gi, but request is 5Gi"
        )

    run(scenario())


def test_limitrange_kind_is_served_and_printed() -> None:
    made = ranged({"type": "Container", "max": {"cpu": "1"}})
    made["metadata"]["creationTimestamp"] = "2026-12-05T10:00:00Z"
    assert limitrange.row(made) == ["limits", "2026-12-05T10:00:00Z"]
    assert r.LIMITRANGES.short_names == ("limits",)
    assert limitrange.KIND.roles == {"view": {"limitranges": frozenset({"get", "list", "watch"})}}
