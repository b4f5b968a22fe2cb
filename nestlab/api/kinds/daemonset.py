"""apps/v1 DaemonSet: listed, and refused with vSphere's reason.

A DaemonSet runs one pod on every node, for node agents (log shippers, CNI, kube-proxy). vSphere
Pods have no per-node system pods: the Spherelet and NSX do that work on the ESXi host itself,
which is why the Kubernetes conformance results for vSphere Pods skip DaemonSet tests. The lab
does the same: its hosts' agent and network are the "daemons". Serving the kind (discovery,
empty lists) and refusing creates with that explanation tells a learner why, instead of
"the server doesn't have a resource type".
"""

from __future__ import annotations

from nestlab.api.kinds.base import AGE, NAME, READ, Kind, Resource

RESOURCE = Resource(
    "daemonsets", "daemonset", "DaemonSet", "apps", "v1", True, ("ds",), (), False, ("all",),
    verbs=("create", "get", "list", "watch"),
)  # fmt: skip
REASON = (
    "DaemonSets are not supported on vSphere Pods: a vSphere Pod is a VM of its own, and per-host system "
    "services (the Spherelet, networking, logging) run on the ESXi host, not as pods (in this lab: "
    "nestlab-agent and the pod network on each host); run the workload as a Deployment, with pod "
    "anti-affinity or topology spread constraints to place one replica per host"
)

KIND = Kind(
    RESOURCE, model="V1DaemonSet", columns=(NAME, AGE), roles={"view": {"daemonsets": READ}}, refusal=REASON
)
