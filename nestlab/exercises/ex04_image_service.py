"""Exercise 4, the image service: done when pod ex04/hello runs the image pushed to project ex04,
its host holds the image's cached disk, and the break-it namespace is gone again
(docs/exercises/04-image-service.md)."""

from __future__ import annotations

import shlex

from nestlab.exercises.base import Exercise, Lab
from nestlab.exercises.common import delete_namespaces, image_digest, pod, pod_missing

NAMESPACE = "ex04"
OTHER = "ex04-other"
IMAGE = "depot:5000/ex04/hello:1"
# `nestlab image push` suggests the short name; the registry resolves it to the same image.
IMAGES = (IMAGE, "ex04/hello:1")
CACHE = "/var/lib/nestlab-agent/images/images"  # the agent's image cache: one directory per digest


def check(lab: Lab) -> list[str]:
    """What of the pushed image, the pod and the host's cached disk is missing."""
    missing = []
    if lab.get(f"/api/v1/namespaces/{OTHER}") is not None:
        missing.append(f"namespace {OTHER} still exists (Break it: delete it to restore)")
    not_running = pod_missing(lab, NAMESPACE, "hello", "steps 1-4")
    found = pod(lab, NAMESPACE, "hello")
    if not_running or found is None:
        return missing + not_running
    containers = (found.get("spec") or {}).get("containers") or [{}]
    if containers[0].get("image") not in IMAGES:
        missing.append(f"pod ex04/hello runs {containers[0].get('image')!r}, not {IMAGE} (step 4)")
        return missing
    digest = image_digest(found)
    host = str((found.get("spec") or {}).get("nodeName", ""))
    disk = shlex.quote(f"{CACHE}/{digest}/rootfs.erofs")
    if not digest or lab.ssh(host, f"test -f {disk} && echo cached || true").strip() != "cached":
        missing.append(f"host {host} has no cached disk of the image ({CACHE}/{digest or '?'}/rootfs.erofs)")
    return missing


def reset(lab: Lab) -> None:
    """Delete namespaces ex04 and ex04-other (the image stays in the registry: pushing again is harmless)."""
    delete_namespaces(lab, NAMESPACE, OTHER, force=True)


EXERCISE = Exercise(
    number=4, slug="image-service", title="The image service", minutes=15, check=check, reset=reset
)
