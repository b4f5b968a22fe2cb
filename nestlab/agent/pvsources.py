"""The API objects a pod's persistent volumes are formed from: its claims, their volumes, attachments.

The kubelet reads a pod's PersistentVolumeClaims, their PersistentVolumes and (for CSI volumes the
attach-detach controller attaches) the VolumeAttachments before it mounts anything; the agent does
the same here, once per attempt, and hands what exists to :func:`nestlab.agent.pvattach.resolve`,
which decides. As in :mod:`nestlab.agent.podsources`, an object that does not exist is simply
absent, and an API that cannot answer raises: "not found" must never be said for "not reachable".

Attachments are read as the kubelet's CSI attacher reads them (``waitForVolumeAttachment``): one GET
per volume of the attachment named for this node (:func:`nestlab.agent.pvattach.attachment_of`),
polled while the pod waits; the Node authorizer refuses a node any list or watch of them. It also
answers 403, not 404, for an attachment that does not exist yet (no node may learn which names
exist on other hosts), so here 403 and 404 both mean "not attached to this node yet".
"""

from __future__ import annotations

from nestlab.agent import pvattach
from nestlab.agent.podsources import _existing  # one "get what exists, 404 is absent" for both
from nestlab.api.client import ApiClient
from nestlab.api.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, VOLUMEATTACHMENTS
from nestlab.api.status import ApiError

Obj = pvattach.Obj


async def fetch(client: ApiClient, pod: Obj) -> pvattach.ClaimObjects:
    """The claims ``pod`` names, their bound volumes and those volumes' VolumeAttachments to the
    pod's node (none are read when the pod has no claim); ApiError when the API cannot answer (the
    caller retries)."""
    names = set(pvattach.claims(pod).values())
    if not names:
        return pvattach.ClaimObjects()
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    pvcs = await _existing(client, PERSISTENTVOLUMECLAIMS, namespace, names)
    bound = {str((c.get("spec") or {}).get("volumeName") or "") for c in pvcs.values()}
    pvs = await _existing(client, PERSISTENTVOLUMES, "", bound)
    node = str((pod.get("spec") or {}).get("nodeName") or "")
    wanted = {pvattach.attachment_of(pv, node) for pv in pvs.values()} if node else set()
    attachments = []
    for name in sorted(n for n in wanted if n):
        try:
            attachments.append(await client.get(VOLUMEATTACHMENTS, "", name))
        except ApiError as exc:
            if exc.code not in (403, 404):  # 403: none attached to this node (see the docstring)
                raise
    return pvattach.ClaimObjects(pvcs, pvs, attachments)
