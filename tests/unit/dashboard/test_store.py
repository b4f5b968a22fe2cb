"""The per-session store: list results, watch events, refusals and the change signal."""

from __future__ import annotations

import asyncio

from nestlab.dashboard import store as st


def _obj(name: str, namespace: str = "", rv: str = "1") -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": rv}}


def test_replace_then_watch_events() -> None:
    store = st.Store()
    store.replace("pods", [_obj("a", "x"), _obj("b", "y")])
    assert [o["metadata"]["name"] for o in store.items("pods")] == ["a", "b"]
    store.apply("pods", "MODIFIED", _obj("a", "x", "2"))
    store.apply("pods", "DELETED", _obj("b", "y"))
    store.apply("pods", "ADDED", _obj("c", "x"))
    version = store.signal.version
    store.apply("pods", "BOOKMARK", _obj("", ""))
    assert store.signal.version == version
    assert [(o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in store.items("pods")] == [
        ("a", "2"),
        ("c", "1"),
    ]
    assert "pods" in store.synced


def test_a_namespaced_list_replaces_only_that_namespace_and_clears_its_refusal() -> None:
    store = st.Store()
    store.replace("pods", [_obj("a", "x"), _obj("b", "y")])
    store.refuse("pods@x", "forbidden")
    store.replace("pods", [_obj("z", "x")], namespace="x")
    assert [st.key_of(o) for o in store.items("pods")] == ["x/z", "y/b"]
    assert "pods@x" not in store.refused
    assert "pods@x" in store.synced


def test_refusal_is_recorded_once() -> None:
    store = st.Store()
    store.refuse("nodes", "forbidden")
    version = store.signal.version
    store.refuse("nodes", "forbidden")
    assert store.signal.version == version
    assert store.refused == {"nodes": "forbidden"}


def test_events_are_trimmed_oldest_first() -> None:
    store = st.Store()
    events = [
        {
            "metadata": {
                "namespace": "a",
                "name": f"e{i:05d}",
                "creationTimestamp": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
            }
        }
        for i in range(st.MAX_EVENTS + 5)
    ]
    store.replace("events", events)
    kept = store.items("events")
    assert len(kept) == st.MAX_EVENTS
    assert kept[0]["metadata"]["name"] == "e00005"


def test_signal_wakes_a_waiter_and_times_out_quietly() -> None:
    async def scenario() -> tuple[int, int]:
        signal = st.Signal()
        waiter = asyncio.create_task(signal.wait(0, 5.0))
        await asyncio.sleep(0)
        signal.bump()
        woken = await waiter
        quiet = await signal.wait(signal.version, 0.01)
        return woken, quiet

    assert asyncio.run(scenario()) == (1, 1)
