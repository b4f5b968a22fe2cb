"""A pod calls the API through the ``kubernetes`` Service with exactly its bindings (issue 14 item 4).

In a namespace of the test's own: ServiceAccount ``reader`` bound by a RoleBinding to a Role that
allows get/list on pods. A pod running as ``reader`` (the client image's curl, its projected token
and ``ca.crt``) calls ``https://kubernetes.default.svc`` (ClusterIP:443, DNAT'ed by the host's
proxy to the VIP:6443, TLS verified against the lab CA and the API server's SANs) and gets:

- the PodList of its own namespace (200), also at ``$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``
  (the ClusterIP, as client-go's in-cluster config dials it);
- 403 listing pods in ``default``, and 403 creating a pod in its own namespace, both with upstream's
  message (``pods is forbidden: User "system:serviceaccount:NS:reader" cannot list resource "pods"
  in API group "" in the namespace "default"``).

A pod with ``automountServiceAccountToken: false`` has no token directory, and a request without
a token is 401.

Needs a lab whose API server certificate names ``kubernetes.default.svc`` and the ClusterIP
(nestlab/provision/pki.py) and whose depot has the client image with curl
(nestlab/images/demo.py).
"""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.conftest import LiveLab
from tests.e2e.labtools import REGISTRY, apply, kubectl, wait_for, wait_phase
from tests.e2e.workloads import LIMITS

Obj = dict[str, Any]
CLIENT = f"{REGISTRY}/nestlab/client:1"
DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API = "https://kubernetes.default.svc"
END = "END OF CALLS"
# After the calls the pod idles as the client image does, ending at once on SIGTERM.
IDLE = f"echo '{END}'; trap 'exit 0' TERM; while true; do sleep 3600 & wait $!; done"
# Each call prints a header line, the response body and then its HTTP status on a line of its own.
CURL = (
    f'curl -sS --max-time 20 -w "\\nHTTP %{{http_code}}\\n" --cacert {DIR}/ca.crt '
    f'-H "Authorization: Bearer $(cat {DIR}/token)"'
)
NEW_POD = json.dumps(
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "made"},
     "spec": {"containers": [{"name": "c", "image": CLIENT}]}}
)  # fmt: skip


def calls(namespace: str) -> str:
    """The reader pod's script: list its namespace's pods, list ``default``'s, create a pod, and list
    its namespace's pods again at the ClusterIP the pod's environment names."""
    return (
        f"echo '== own'; {CURL} {API}/api/v1/namespaces/{namespace}/pods; "
        f"echo '== other'; {CURL} {API}/api/v1/namespaces/default/pods; "
        f"echo '== create'; {CURL} -X POST -H 'Content-Type: application/json' -d '{NEW_POD}' "
        f"{API}/api/v1/namespaces/{namespace}/pods; "
        # what client-go's in-cluster config dials: the Service's address from the pod's environment
        f"echo '== by-address'; {CURL} "
        f"https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/{namespace}/pods; {IDLE}"
    )


NO_TOKEN = (
    f"ls {DIR} >/dev/null 2>&1 && echo 'TOKEN DIR' || echo 'NO TOKEN DIR'; "
    # no ca.crt either: -k, since what is checked is the missing credential, not the server
    f'echo "== anonymous"; curl -sS -k --max-time 20 -w "\\nHTTP %{{http_code}}\\n" {API}/api/v1/namespaces; '
    f"{IDLE}"
)


def pod(namespace: str, name: str, script: str, **spec: object) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            **spec,
            "containers": [
                {
                    "name": "c",
                    "image": CLIENT,
                    # a host that pulled client:1 before it carried curl keeps that disk under
                    # IfNotPresent; Always asks the depot what the tag means now
                    "imagePullPolicy": "Always",
                    "command": ["sh", "-c", script],
                    "resources": LIMITS,
                }
            ],
        },
    }


def answers(log: str) -> dict[str, tuple[int, Obj]]:
    """Section name -> (HTTP status, JSON body) from the script's output (pure).

    pod-init splits output lines longer than 1 KiB (the console is line-based) and ``kubectl logs``
    shows the pieces as lines: a body's lines are joined without separators, which rebuilds the
    JSON exactly (a newline between JSON tokens is only whitespace).
    """
    found: dict[str, tuple[int, Obj]] = {}
    section, body = "", list[str]()
    for line in log.splitlines():
        if line.startswith("== "):
            section, body = line[3:].strip(), []
        elif line.startswith("HTTP ") and section:
            found[section] = (int(line.split()[1]), _json("".join(body).strip()))
            section = ""
        elif section:
            body.append(line)
    return found


def _json(text: str) -> Obj:
    """A body as JSON; curl's own error (``curl: (60) SSL: ...``, status 000) kept as ``raw``."""
    try:
        parsed = json.loads(text) if text else {}
    except ValueError:
        return {"raw": text}
    return parsed if isinstance(parsed, dict) else {"raw": text}


def logs(lab: LiveLab, namespace: str, name: str) -> str:
    return kubectl(lab, "logs", name, "-n", namespace, check=False).stdout


def finished(log: str) -> bool:
    """Whether the script printed its last line. A line of its own: the PodList the pod reads
    carries the pod's own command, END's text included, inside a longer line."""
    return END in (line.strip() for line in log.splitlines())


def forbidden(namespace: str, verb: str, where: str) -> str:
    """Upstream's message for a service account refused ``verb`` on pods in namespace ``where``."""
    return (
        f'pods is forbidden: User "system:serviceaccount:{namespace}:reader" cannot {verb} resource "pods" '
        f'in API group "" in the namespace "{where}"'
    )


def test_a_pod_calls_the_api_with_exactly_its_bindings(agents: LiveLab, namespace: str) -> None:
    kubectl(agents, "create", "serviceaccount", "reader", "-n", namespace)
    kubectl(agents, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", namespace)
    kubectl(
        agents, "create", "rolebinding", "reader", "--role=pod-reader",
        f"--serviceaccount={namespace}:reader", "-n", namespace,
    )  # fmt: skip
    apply(agents, pod(namespace, "caller", calls(namespace), serviceAccountName="reader"))
    apply(agents, pod(namespace, "tokenless", NO_TOKEN, automountServiceAccountToken=False))

    made = wait_phase(agents, namespace, "caller", ("Running",))
    assert made["spec"]["serviceAccountName"] == "reader"
    wait_for(lambda: finished(logs(agents, namespace, "caller")), "the caller pod to make its calls")
    log = logs(agents, namespace, "caller")
    said = answers(log)
    assert set(said) == {"own", "other", "create", "by-address"}, log

    code, body = said["own"]
    assert code == 200, log
    assert body["kind"] == "PodList"
    assert "caller" in [item["metadata"]["name"] for item in body["items"]]

    code, body = said["other"]
    assert code == 403, log
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Forbidden", 403)
    assert body["message"] == forbidden(namespace, "list", "default")

    code, body = said["create"]
    assert code == 403, log
    assert body["message"] == forbidden(namespace, "create", namespace)
    assert kubectl(agents, "get", "pod", "made", "-n", namespace, check=False).returncode != 0

    code, body = said["by-address"]  # the certificate names the ClusterIP too
    assert (code, body.get("kind")) == (200, "PodList"), log

    bare = wait_phase(agents, namespace, "tokenless", ("Running",))
    assert bare["spec"]["automountServiceAccountToken"] is False
    assert not any(
        m.get("mountPath") == DIR for c in bare["spec"]["containers"] for m in c.get("volumeMounts") or []
    )
    wait_for(lambda: finished(logs(agents, namespace, "tokenless")), "the tokenless pod to make its call")
    log = logs(agents, namespace, "tokenless")
    assert "NO TOKEN DIR" in log.splitlines(), log
    code, body = answers(log)["anonymous"]
    assert (code, body.get("reason")) == (401, "Unauthorized"), log
