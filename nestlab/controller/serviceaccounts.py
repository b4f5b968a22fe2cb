"""Every namespace gets a ``default`` ServiceAccount and the ``kube-root-ca.crt`` ConfigMap.

Two upstream controllers in one: the ServiceAccounts controller (a ``default`` ServiceAccount in
each active namespace, recreated when deleted: the ServiceAccount admission plugin refuses pods
whose ServiceAccount does not exist) and the root-CA publisher (ConfigMap ``kube-root-ca.crt``
holding the CA that signed the API server's certificate, which each pod's projected
``kube-api-access-*`` volume mounts as ``ca.crt``, so a pod can verify ``kubernetes.default.svc``).
The CA is the lab CA the controller itself trusts the API server with. :func:`plan` decides
(pure); :class:`ServiceAccountsController` reads the informers' caches and writes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import CONFIGMAPS, NAMESPACES, SERVICEACCOUNTS
from nestlab.controller.informer import Controller, EventHandler, InformerFactory, key_of, split_key
from nestlab.controller.workqueue import WorkQueue
from nestlab.errors import UsageError

Obj = dict[str, Any]
DEFAULT_ACCOUNT = "default"
ROOT_CA = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (  # upstream rootcacertpublisher's annotation, word for word
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
    "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
    "distributions of Kubernetes clusters."
)


@dataclass(frozen=True)
class Plan:
    """What one namespace lacks."""

    account: Obj | None = None
    """The ServiceAccount to create, if missing."""
    create_ca: Obj | None = None
    """The ConfigMap to create, if missing."""
    update_ca: Obj | None = None
    """The ConfigMap rewritten with the current CA, if it holds another."""


def active(namespace: Obj | None) -> bool:
    """Whether objects may be created in ``namespace`` (it exists and is not terminating)."""
    if namespace is None:
        return False
    meta, phase = namespace.get("metadata") or {}, (namespace.get("status") or {}).get("phase")
    return not meta.get("deletionTimestamp") and phase != "Terminating"


def root_ca(ca_pem: str) -> Obj:
    """A fresh ``kube-root-ca.crt`` ConfigMap (no namespace: the request path gives it)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": ROOT_CA, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
        "data": {"ca.crt": ca_pem},
    }


def plan(namespace: Obj | None, account: Obj | None, configmap: Obj | None, ca_pem: str) -> Plan:
    """What to write for one namespace given what exists (pure)."""
    if not active(namespace):
        return Plan()
    wanted_account = None
    if account is None:
        wanted_account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_ACCOUNT},
        }
    if not ca_pem:
        return Plan(wanted_account)
    if configmap is None:
        return Plan(wanted_account, root_ca(ca_pem))
    if (configmap.get("data") or {}).get("ca.crt") != ca_pem or configmap.get("binaryData"):
        updated = copy.deepcopy(configmap)
        updated["data"] = {"ca.crt": ca_pem}
        updated.pop("binaryData", None)
        updated["metadata"].setdefault("annotations", {})[DESCRIPTION_ANNOTATION] = DESCRIPTION
        return Plan(wanted_account, update_ca=updated)
    return Plan(wanted_account)


class ServiceAccountsController:
    """``default`` ServiceAccount and ``kube-root-ca.crt`` in every namespace; keys are namespaces."""

    name = "serviceaccounts"
    workers = 1

    def __init__(self, client: ApiClient, informers: InformerFactory, ca_pem: str) -> None:
        self.client = client
        self.ca_pem = ca_pem
        self.queue = WorkQueue(self.name)
        self.namespaces = informers.informer(NAMESPACES)
        self.accounts = informers.informer(SERVICEACCOUNTS)
        self.configmaps = informers.informer(CONFIGMAPS)
        self.namespaces.add_handler(
            EventHandler(on_add=self._namespace, on_update=lambda _old, new: self._namespace(new))
        )
        self.accounts.add_handler(EventHandler(on_delete=self._owned(DEFAULT_ACCOUNT)))
        self.configmaps.add_handler(
            EventHandler(
                on_update=lambda _old, new: self._owned(ROOT_CA)(new), on_delete=self._owned(ROOT_CA)
            )
        )

    def _namespace(self, namespace: Obj) -> None:
        self.queue.add(key_of(namespace))

    def _owned(self, name: str) -> Callable[[Obj], None]:
        def enqueue(obj: Obj) -> None:
            meta = obj.get("metadata") or {}
            if meta.get("name") == name and meta.get("namespace"):
                self.queue.add(str(meta["namespace"]))

        return enqueue

    async def sync(self, key: str) -> None:
        """Create or fix what namespace ``key`` lacks; ApiError retries (409/404/403 are settled)."""
        _, namespace = split_key(key)
        todo = plan(
            self.namespaces.get(namespace),
            self.accounts.get(f"{namespace}/{DEFAULT_ACCOUNT}"),
            self.configmaps.get(f"{namespace}/{ROOT_CA}"),
            self.ca_pem,
        )
        if todo.account is not None:
            await _settled(self.client.create(SERVICEACCOUNTS, namespace, todo.account))
        if todo.create_ca is not None:
            await _settled(self.client.create(CONFIGMAPS, namespace, todo.create_ca))
        if todo.update_ca is not None:
            await _settled(self.client.replace(CONFIGMAPS, namespace, todo.update_ca))


async def _settled(call: Any) -> None:
    """Await a write; 409 (someone else wrote it first: the watch re-enqueues), 404 and 403 (the
    namespace went away or is terminating) are answers, not failures."""
    try:
        await call
    except status.ApiError as exc:
        if exc.code not in (403, 404, 409):
            raise


def read_ca(path: Path | None) -> str:
    """The PEM of the CA file the controller trusts the API with ("" when it has none)."""
    if path is None:
        return ""
    try:
        return path.read_text()
    except OSError as exc:
        raise UsageError(
            f"cannot read the CA certificate {path} for kube-root-ca.crt: {exc.strerror}"
        ) from exc


def factory(ca: Path | None) -> Callable[[ApiClient, InformerFactory], Controller]:
    """The CONTROLLERS entry: ``ca`` is the CA file of the controller's own credentials (None: the
    ServiceAccounts only, no ``kube-root-ca.crt``)."""
    ca_pem = read_ca(ca)

    def build(client: ApiClient, informers: InformerFactory) -> Controller:
        return ServiceAccountsController(client, informers, ca_pem)

    return build
