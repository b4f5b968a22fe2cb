"""Exercise 6, Services and the distributed load balancer: done when Service ex06/web balances over
the 3 web replicas, the client pod reaches it by name, and Service web-lb has an address on the
edge pair (docs/exercises/06-services.md).

Besides the objects, the check does what the learner did once: fetch ``http://web/host`` from the
client pod, which goes through cluster DNS and a host's nftables rules to one replica.
"""

from __future__ import annotations

from nestlab.exercises.base import Exercise, Lab, Obj
from nestlab.exercises.common import delete_namespaces, pod_missing

NAMESPACE = "ex06"
REPLICAS = 3
SELECTOR = {"app": "web"}
FETCH = "timeout 10 wget -q -O- http://web/host 2>&1 || echo FAILED"  # busybox wget -T crashes


def _service(lab: Lab, name: str) -> Obj | None:
    return lab.get(f"/api/v1/namespaces/{NAMESPACE}/services/{name}")


def ready_addresses(endpoints: Obj | None) -> list[str]:
    """The ready addresses of an Endpoints object (its pool members now)."""
    found: list[str] = []
    for subset in (endpoints or {}).get("subsets") or []:
        found.extend(str(a.get("ip")) for a in subset.get("addresses") or [])
    return found


def service_missing(lab: Lab) -> list[str]:
    """What is wrong with the ClusterIP Service web and its endpoints."""
    service = _service(lab, "web")
    if service is None:
        return [
            f"there is no service web in {NAMESPACE} (step 2: kubectl -n {NAMESPACE} expose deployment web)"
        ]
    spec = service.get("spec") or {}
    missing = []
    if spec.get("type", "ClusterIP") != "ClusterIP":
        missing.append(f"service web in {NAMESPACE} is of type {spec.get('type')}, not ClusterIP (step 2)")
    if (spec.get("selector") or {}) != SELECTOR:
        missing.append(
            f"service web in {NAMESPACE} selects {spec.get('selector') or 'nothing'}, not app=web "
            "(Break it: put the selector back)"
        )
        return missing
    endpoints = lab.get(f"/api/v1/namespaces/{NAMESPACE}/endpoints/web")
    count = len(ready_addresses(endpoints))
    if count != REPLICAS:
        missing.append(
            f"service web in {NAMESPACE} has {count} ready endpoints, not {REPLICAS} "
            f"(kubectl -n {NAMESPACE} get endpoints web; are the 3 web pods running?)"
        )
    return missing


def load_balancer_missing(lab: Lab) -> list[str]:
    """What is wrong with the LoadBalancer Service web-lb."""
    service = _service(lab, "web-lb")
    if service is None:
        return [f"there is no service web-lb in {NAMESPACE} (step 7)"]
    if (service.get("spec") or {}).get("type") != "LoadBalancer":
        return [f"service web-lb in {NAMESPACE} is not of type LoadBalancer (step 7)"]
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if not any(i.get("ip") for i in ingress):
        return [
            f"service web-lb in {NAMESPACE} has no external address yet "
            f"(kubectl -n {NAMESPACE} get service web-lb)"
        ]
    return []


def check(lab: Lab) -> list[str]:
    """What of the Services, the client and the answer through the Service is still missing."""
    if lab.get(f"/api/v1/namespaces/{NAMESPACE}") is None:
        return [f"namespace {NAMESPACE} does not exist yet (step 1)"]
    missing = []
    if lab.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/web") is None:
        missing.append(f"deployment web in {NAMESPACE} does not exist yet (step 1)")
    services = service_missing(lab)
    client = pod_missing(lab, NAMESPACE, "client", "step 3")
    missing.extend(services + client)
    if not services and not client:
        answer = lab.kubectl("-n", NAMESPACE, "exec", "client", "--", "sh", "-c", FETCH, check=False).strip()
        if not answer.startswith("web-"):
            missing.append(
                f"the client pod in {NAMESPACE} gets no answer from http://web/host "
                f"({answer.splitlines()[-1] if answer else 'no output'})"
            )
    missing.extend(load_balancer_missing(lab))
    return missing


def reset(lab: Lab) -> None:
    """Delete namespace ex06 (its Services, Deployment, client and pod VMs with it).

    Forced (:func:`delete_namespaces`): the web server ignores SIGTERM, so a graceful delete would
    wait out each pod's 30 s grace period.
    """
    delete_namespaces(lab, NAMESPACE, force=True)


EXERCISE = Exercise(
    number=6,
    slug="services",
    title="Services and the distributed load balancer",
    minutes=15,
    check=check,
    reset=reset,
)
