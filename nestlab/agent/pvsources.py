"""The API objects a pod's persistent volumes are formed from: its claims, their volumes, attachments.

The kubelet reads a pod's PersistentVolumeClaims, their PersistentVolumes and (for CSI volumes the
attach-detach controller attaches) the VolumeAttachments before it mounts anything; the agent does
the same here, once per attempt, and hands what exists to :func:`nestlab.agent.pvattach.resolve`,
which decides. As in :mod:`nestlab.agent.podsources`, an object that does not exist is simply
absent, and an API that cannot answer raises: "not found" must never be said for "not reachable".
"""

from __future__ import annotations

from nestlab.agent import pvattach
from nestlab.agent.podsources import _existing  # one "get what exists, 404 is absent" for both
from nestlab.api.client import ApiClient
from nestlab.api.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, VOLUMEATTACHMENTS

Obj = pvattach.Obj


async def fetch(client: ApiClient, pod: Obj) -> pvattach.ClaimObjects:
    """The claims ``pod`` names, their bound volumes and the VolumeAttachments (none are read when
    the pod has no claim); ApiError when the API cannot answer (the caller retries)."""
    names = set(pvattach.claims(pod).values())
    if not names:
        return pvattach.ClaimObjects()
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    pvcs = await _existing(client, PERSISTENTVOLUMECLAIMS, namespace, names)
    bound = {str((c.get("spec") or {}).get("volumeName") or "") for c in pvcs.values()}
    pvs = await _existing(client, PERSISTENTVOLUMES, "", bound)
    attachments = (await client.list(VOLUMEATTACHMENTS)).get("items") or [] if pvs else []
    return pvattach.ClaimObjects(pvcs, pvs, list(attachments))
