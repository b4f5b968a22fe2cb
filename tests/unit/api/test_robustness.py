"""Whatever a client sends, the parsers answer with a Status error or a result, never a crash.

This is what backs "the server never answers 500 to client input": every function that reads
client-controlled data is fed arbitrary input and may only raise ApiError (or QuantityError,
which validation turns into a 422 cause).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nestlab.api import fields, kinds, patch, protobuf, quantity, selectors
from nestlab.api import resources as r
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(["metadata", "spec", "status", "containers", "name", "image", "resources", "requests",
                        "cpu", "labels", "env", "ports", "$patch", "nodeSelector", "restartPolicy", "kind"])  # fmt: skip
OBJECTS = st.recursive(
    st.none() | st.text(max_size=6) | st.integers(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=25,
)
SETTINGS = settings(max_examples=300, deadline=None)


def only_api_errors(call: Any, *args: Any) -> None:
    refusal: ApiError | None = None
    try:
        call(*args)
    except ApiError as exc:
        refusal = exc
    if refusal is not None:
        assert 400 <= refusal.code < 500
        assert refusal.message


@SETTINGS
@given(st.text(max_size=40))
def test_label_selectors(text: str) -> None:
    only_api_errors(selectors.parse_labels, text)


@SETTINGS
@given(st.text(max_size=40), st.sampled_from(["pods", "events", "nodes"]))
def test_field_selectors(text: str, plural: str) -> None:
    only_api_errors(selectors.compile_selector, "", text, plural)


@SETTINGS
@given(OBJECTS, OBJECTS)
def test_merge_and_strategic_patches(target: Any, body: Any) -> None:
    for kind in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
        only_api_errors(patch.apply_patch, kind, target if isinstance(target, dict) else {}, body)


@SETTINGS
@given(OBJECTS, JSON)
def test_json_patches(target: Any, body: Any) -> None:
    only_api_errors(patch.json_patch, target, body)


@SETTINGS
@given(st.binary(max_size=64))
def test_protobuf_bodies(body: bytes) -> None:
    only_api_errors(protobuf.decode, protobuf.MAGIC + body)


@SETTINGS
@given(OBJECTS)
def test_validation_and_fields(obj: Any) -> None:
    for resource in r.ALL:
        if isinstance(obj, dict):
            only_api_errors(fields.enforce, dict(obj), resource, "Warn")
            unit = kinds.of(resource)
            unit.default(obj)
            unit.validate(obj)
            unit.validate_update(obj, obj)


@SETTINGS
@given(st.text(max_size=12))
def test_quantities(text: str) -> None:
    with contextlib.suppress(quantity.QuantityError):
        quantity.parse(text)


async def _every_verb(resource: r.Resource, body: Any, options: Any) -> list[int]:
    """Drive the registry with one arbitrary body through every verb; the refusal codes."""
    registry = Registry(Store(FakeEtcd()))  # type: ignore[arg-type]
    await registry.create(r.NAMESPACES, "", {"metadata": {"name": "ns"}})
    seed = {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    seeded = await registry.create(r.PODS, "ns", seed) if resource is r.PODS else None
    namespace = "ns" if resource.namespaced else ""
    name = "x" if seeded is not None else "y"
    calls = [
        lambda: registry.create(resource, namespace, copy.deepcopy(body)),
        lambda: registry.update(resource, namespace, name, copy.deepcopy(body)),
        lambda: registry.update(resource, namespace, name, copy.deepcopy(body), "status"),
        lambda: registry.patch(
            resource, namespace, name, "application/merge-patch+json", copy.deepcopy(body)
        ),
        lambda: registry.patch(
            resource, namespace, name, "application/strategic-merge-patch+json", copy.deepcopy(body)
        ),
        lambda: registry.bind(namespace, name, copy.deepcopy(body)),
        lambda: registry.delete(resource, namespace, name, options if isinstance(options, dict) else {}),
    ]
    codes = []
    for call in calls:
        try:
            await call()
        except ApiError as exc:
            codes.append(exc.code)
    await registry.close()
    return codes


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([res for res in r.ALL if res.stored]), OBJECTS, OBJECTS)
def test_registry_answers_any_body_with_a_status(resource: r.Resource, body: Any, options: Any) -> None:
    codes = asyncio.run(_every_verb(resource, body, options))
    assert all(400 <= code < 500 for code in codes), codes
