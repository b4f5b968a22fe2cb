"""The agent passes each container's imagePullPolicy to the image service, and a Never pod whose
image is absent waits with ErrImageNeverPull (never ImagePullBackOff) and the kubelet's Event."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nestlab.agent.images import Image
from nestlab.agent.registry import ImageNeverPullError, ImageRef
from nestlab.runtime import control
from tests.unit.agent.test_agent_reconcile import FakeImages, Launches, make_agent, pod, settle, short_tmp

__all__ = ["short_tmp"]  # the fixture
MESSAGE = 'Container image "demo/busybox:1" is not present with pull policy of Never'


class AbsentImages(FakeImages):
    """No image is on the host: Never fails, as :class:`nestlab.agent.images.ImageStore` does."""

    def pull(self, ref: ImageRef, *, policy: str = "IfNotPresent", shown: str = "", pod: str = "") -> Image:
        if policy == "Never":
            self.pulls += 1
            self.policies.append((policy, shown))
            raise ImageNeverPullError(shown)
        return super().pull(ref, policy=policy, shown=shown)


def test_the_policy_and_the_image_as_written_reach_the_image_service(short_tmp: Path) -> None:
    images = FakeImages(short_tmp)
    done: list[control.Event] = [control.Init(1), control.PodDone("web", "Succeeded")]
    agent, _ = make_agent(short_tmp, Launches(done), images)
    obj = pod(imagePullPolicy="Always")

    async def scenario() -> None:
        await agent.sync("ADDED", obj)
        await settle(agent)

    asyncio.run(scenario())
    assert images.policies[0] == ("Always", "demo/busybox:1")


def test_never_without_the_image_waits_with_err_image_never_pull(short_tmp: Path) -> None:
    images = AbsentImages(short_tmp)
    launches = Launches([])
    agent, client = make_agent(short_tmp, launches, images)

    async def scenario() -> None:
        await agent.sync("ADDED", pod(imagePullPolicy="Never"))
        deadline = time.monotonic() + 30
        while images.pulls < 2 and time.monotonic() < deadline:  # a retry, after the first back-off
            await asyncio.sleep(0.05)
        await agent.sync("DELETED", pod(imagePullPolicy="Never"))
        await settle(agent)

    asyncio.run(scenario())
    assert images.pulls >= 2, "the agent did not try again"
    assert launches.launched == []
    waiting = [s["containerStatuses"][0]["state"].get("waiting") for s in client.statuses]
    reasons = {w["reason"] for w in waiting if w}
    assert "ErrImageNeverPull" in reasons
    assert "ImagePullBackOff" not in reasons
    assert any(w and w.get("message") == MESSAGE for w in waiting)
    events = [(e["type"], e["reason"], e["message"]) for e in client.created if e.get("kind") == "Event"]
    assert ("Warning", "ErrImageNeverPull", MESSAGE) in events
