"""The auth matrix: generated subjects x roles x verbs x resources x namespaces, against a small table.

Each subject is bound (or not) to view, edit, admin or a custom Role in one namespace; the expected
decision of every (subject, namespace, resource, verb) is computed from :data:`POLICY` alone (what
upstream's view/edit/admin mean), never from the server's roles, and compared with the real API
server's answer to a SubjectAccessReview. Zero differences are allowed; every difference is listed.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer

pytestmark = pytest.mark.integration

NAMESPACES = ("mx-a", "mx-b")
READ = frozenset({"get", "list", "watch"})
WRITE = frozenset({"create", "update", "patch", "delete", "deletecollection"})
ALL = READ | WRITE
NONE: frozenset[str] = frozenset()
VERBS = sorted(ALL)
RBAC = "rbac.authorization.k8s.io"

POLICY: dict[tuple[str, str], dict[str, frozenset[str]]] = {
    ("", "pods"): {"view": READ, "edit": ALL, "admin": ALL, "custom": frozenset({"get", "list"})},
    ("", "pods/log"): {"view": READ, "edit": READ, "admin": READ, "custom": frozenset({"get"})},
    ("", "secrets"): {"view": NONE, "edit": ALL, "admin": ALL, "custom": NONE},
    ("", "configmaps"): {"view": READ, "edit": ALL, "admin": ALL, "custom": NONE},
    ("", "services"): {"view": READ, "edit": ALL, "admin": ALL, "custom": NONE},
    ("apps", "deployments"): {"view": READ, "edit": ALL, "admin": ALL, "custom": NONE},
    ("batch", "jobs"): {"view": READ, "edit": ALL, "admin": ALL, "custom": NONE},
    ("", "resourcequotas"): {"view": READ, "edit": READ, "admin": READ, "custom": NONE},
    (RBAC, "rolebindings"): {"view": NONE, "edit": NONE, "admin": ALL, "custom": NONE},
    (RBAC, "roles"): {"view": NONE, "edit": NONE, "admin": ALL, "custom": NONE},
    ("", "nodes"): {"view": NONE, "edit": NONE, "admin": NONE, "custom": NONE},  # cluster-scoped
    ("registry.nestlab.dev", "images"): {
        "view": frozenset({"get"}),
        "edit": frozenset({"get", "create"}),
        "admin": frozenset({"get", "create", "delete"}),
        "custom": NONE,
    },
}
"""What each role grants on each resource, per upstream's intent (a RoleBinding grants in its namespace)."""

CUSTOM_ROLE = {
    "metadata": {"name": "pod-reader"},
    "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ],
}


@dataclass(frozen=True)
class Subject:
    """A user asked about, and the binding (if any) that names it."""

    user: str
    groups: tuple[str, ...]
    role: str
    """view, edit, admin, custom or none."""
    namespace: str
    """Where it is bound."""
    binding_subject: dict[str, str]


def subjects() -> list[Subject]:
    """One user per role bound in mx-a, a group-bound editor in mx-b, a ServiceAccount viewer."""
    found = [
        Subject(f"mx-{role}", ("mx-people",), role, "mx-a", {"kind": "User", "name": f"mx-{role}"})
        for role in ("view", "edit", "admin", "custom", "none")
    ]
    found.append(
        Subject("mx-grouped", ("mx-editors",), "edit", "mx-b", {"kind": "Group", "name": "mx-editors"})
    )
    robot = "system:serviceaccount:mx-a:robot"
    found.append(
        Subject(
            robot, ("system:serviceaccounts",), "view", "mx-a", {"kind": "ServiceAccount", "name": "robot"}
        )
    )
    return found


def expected(subject: Subject, namespace: str, group: str, resource: str, verb: str) -> bool:
    """The decision from the table alone."""
    if subject.role == "none" or namespace != subject.namespace:
        return False
    return verb in POLICY[(group, resource)][subject.role]


class Api:
    """One keep-alive HTTPS connection as the lab administrator (1,000+ reviews in a row)."""

    def __init__(self, server: ApiServer) -> None:
        url = urllib.parse.urlsplit(server.url)
        self.conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=server.context())

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        self.conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def matrix(apiserver: ApiServer) -> Iterator[Api]:
    """The namespaces, the custom Role and one binding per subject; all deleted afterwards."""
    api = Api(apiserver)
    rbac = f"/apis/{RBAC}/v1"
    made: list[str] = []
    try:
        for namespace in NAMESPACES:
            assert api.call("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})[0] == 201
            made.append(f"/api/v1/namespaces/{namespace}")
        assert api.call("POST", f"{rbac}/namespaces/mx-a/roles", CUSTOM_ROLE)[0] == 201
        for number, subject in enumerate(subjects()):
            if subject.role == "none":
                continue
            kind, name = ("Role", "pod-reader") if subject.role == "custom" else ("ClusterRole", subject.role)
            binding = {
                "metadata": {"name": f"mx-{number}"},
                "roleRef": {"apiGroup": RBAC, "kind": kind, "name": name},
                "subjects": [subject.binding_subject],
            }
            path = f"{rbac}/namespaces/{subject.namespace}/rolebindings"
            code, body = api.call("POST", path, binding)
            assert code == 201, body
            made.append(f"{path}/mx-{number}")
        yield api
    finally:
        for path in reversed(made):
            api.call("DELETE", path)
        api.close()


def test_matrix_has_zero_differences(matrix: Api) -> None:
    differences, asked = [], 0
    for subject in subjects():
        for namespace in NAMESPACES:
            for (group, combined), _ in POLICY.items():
                resource, _, sub = combined.partition("/")
                for verb in VERBS:
                    attributes = {"namespace": namespace, "verb": verb, "group": group, "resource": resource}
                    attributes |= {"subresource": sub} if sub else {}
                    attributes |= {"name": "x"} if verb in ("get", "update", "patch", "delete") else {}
                    review = {
                        "apiVersion": "authorization.k8s.io/v1",
                        "kind": "SubjectAccessReview",
                        "spec": {
                            "user": subject.user,
                            "groups": list(subject.groups),
                            "resourceAttributes": attributes,
                        },
                    }
                    code, body = matrix.call(
                        "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review
                    )
                    assert code == 201, body
                    asked += 1
                    want = expected(subject, namespace, group, combined, verb)
                    if body["status"]["allowed"] != want:
                        differences.append(
                            f"{subject.user} {verb} {combined or resource} in {namespace}: want {want}"
                        )
    assert asked == len(subjects()) * len(NAMESPACES) * len(POLICY) * len(VERBS)
    assert differences == [], f"{len(differences)} of {asked} decisions differ:\n" + "\n".join(differences)


def test_unbound_namespace_names_are_reviewed_like_requests(matrix: Api) -> None:
    """A RoleBinding in mx-a lets its subject read the namespace object mx-a only (upstream: a
    request on /namespaces/<name> is in that namespace), never change it."""
    for verb, namespace, want in (("get", "mx-a", True), ("get", "mx-b", False), ("delete", "mx-a", False)):
        attributes = {"verb": verb, "resource": "namespaces", "name": namespace}
        review = {"spec": {"user": "mx-view", "resourceAttributes": attributes}}
        code, body = matrix.call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
        assert code == 201, body
        assert body["status"]["allowed"] is want, (verb, namespace)
