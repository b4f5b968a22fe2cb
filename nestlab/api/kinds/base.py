"""What one served Kubernetes kind is made of, so that adding a kind is one module filling a :class:`Kind`.

The registry, the handlers, discovery, OpenAPI, table printing, field selectors, unknown-field
checks, protobuf decoding and the built-in roles all read the kind's unit instead of branching on
the kind: the generic machinery lives in the API package, everything particular to ``Deployment``
lives in ``kinds/deployment.py``. A hook that a kind does not need keeps its do-nothing default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nestlab.api.kinds import wiremeta
from nestlab.api.status import Cause

Obj = dict[str, Any]
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ = frozenset({"get", "list", "watch"})
WRITE = frozenset({"create", "update", "patch", "delete", "deletecollection"})
Hook = Callable[[Obj], None]
Check = Callable[[Obj], list[Cause]]
UpdateCheck = Callable[[Obj, Obj], list[Cause]]
"""(new, old) -> causes: rules about what an update may change."""
Row = Callable[[Obj], list[Any]]
ProtoSchema = dict[int, tuple[str, Any]]
"""Protobuf field number -> (JSON name, kind): see :mod:`nestlab.api.protobuf`."""
PROTO_META = wiremeta.OBJECT_META
"""ObjectMeta's protobuf fields (upstream generated.proto numbers), server-owned ones included."""
Roles = Mapping[str, Mapping[str, frozenset[str]]]
"""ClusterRole name (view, edit, admin, node) -> ``plural`` or ``plural/sub`` -> verbs."""


@dataclass(frozen=True)
class Resource:
    """Where a kind is served: names, group, version, scope and verbs."""

    plural: str
    """URL and storage name (``pods``)."""
    singular: str
    kind: str
    group: str
    """API group; "" is the core group served under /api."""
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    """``status``, ``binding``, ``log``, ``scale``, ``eviction``: served under /<plural>/<name>/<sub>."""
    has_status: bool = False
    """Whether ``status`` is only writable through the status subresource."""
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    """What the resource supports; create-only kinds (access reviews) are never stored."""

    @property
    def stored(self) -> bool:
        """Whether objects of this kind live in etcd (access reviews are answered, not kept)."""
        return "get" in self.verbs

    @property
    def group_version(self) -> str:
        """``v1`` or ``apps/v1``: the apiVersion of objects of this type."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def key(self, namespace: str, name: str) -> str:
        """The etcd key of one object."""
        group = f"{self.group}/" if self.group else ""
        if self.namespaced:
            return f"/registry/{group}{self.plural}/{namespace}/{name}"
        return f"/registry/{group}{self.plural}/{name}"

    def prefix(self, namespace: str = "") -> str:
        """The etcd prefix of all objects (of ``namespace``, when given)."""
        group = f"{self.group}/" if self.group else ""
        if self.namespaced and namespace:
            return f"/registry/{group}{self.plural}/{namespace}/"
        return f"/registry/{group}{self.plural}/"


@dataclass(frozen=True)
class Column:
    """One printer column of ``kubectl get`` (server-side printing)."""

    name: str
    type: str
    priority: int
    """0: always shown; 1: only with ``-o wide``."""
    description: str


NAME = Column("Name", "string", 0, "Name must be unique within a namespace.")
AGE = Column(
    "Age",
    "string",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)


@dataclass(frozen=True)
class Claim:
    """An etcd key an object holds exclusively while it exists (a Service's ClusterIP).

    The store creates the key in the same transaction as the object (only if nobody holds it),
    deletes it in the same transaction as the object, and moves it when an update changes it: two
    API servers racing for one value cannot both win, and a deleted object frees its values.
    """

    key: str
    path: str
    """The field holding the value, for the 422 cause when another object holds it."""
    message: str
    """The cause message when another object holds it (``Invalid value: "X": ... already allocated``)."""


@dataclass(frozen=True)
class Scale:
    """How the ``/scale`` subresource reads and writes a kind (autoscaling/v1 Scale)."""

    selector: Callable[[Obj], str]
    """The label selector of the pods it scales, as a string (``app=web,tier in (a)``)."""
    status_replicas: str = "replicas"
    """The status field holding the observed replica count."""


def nothing(_obj: Obj) -> None:
    """The default of hooks a kind does not need."""


def no_causes(_obj: Obj) -> list[Cause]:
    return []


def no_update_causes(_new: Obj, _old: Obj) -> list[Cause]:
    return []


def keep_nothing(_new: Obj, _old: Obj) -> None:
    return None


def no_claims(_obj: Obj) -> tuple[Claim, ...]:
    return ()


def name_age_row(obj: Obj) -> list[Any]:
    from nestlab.api.kinds.printing import age  # noqa: PLC0415 - printing imports this module

    return [obj["metadata"]["name"], age(obj["metadata"].get("creationTimestamp"))]


@dataclass(frozen=True)
class Kind:
    """Everything particular to one served kind. The registry list is :data:`nestlab.api.kinds.ALL`."""

    resource: Resource
    model: str = ""
    """The upstream type (``V1Deployment``) whose schema is published in OpenAPI and whose fields are
    the known fields for ``fieldValidation``; "" for kinds that are answered, not stored."""
    default: Hook = nothing
    """Fill upstream defaults (on create and on every update, before validation)."""
    on_create: Hook = nothing
    """Set what the server owns on a new object (initial status, spec finalizers)."""
    on_update: Callable[[Obj, Obj], None] = keep_nothing
    """(new, old): keep what a spec update may not change (beyond metadata and status)."""
    validate: Check = no_causes
    """Causes against the whole object, on create and update (defaults applied)."""
    validate_update: UpdateCheck = no_update_causes
    """(new, old) causes: immutable fields."""
    columns: tuple[Column, ...] = (NAME, AGE)
    row: Row = name_age_row
    selectable: tuple[str, ...] = ()
    """Field-selector paths beyond metadata.name and metadata.namespace."""
    roles: Roles = field(default_factory=dict)
    """What the built-in ClusterRoles (view, edit, admin) and node agents may do with it."""
    protobuf: ProtoSchema | None = None
    """How to read the kind from ``application/vnd.kubernetes.protobuf`` bodies (None: refused, 415)."""
    generation: bool = False
    """``metadata.generation`` starts at 1 and counts changes of everything but metadata and status."""
    scale: Scale | None = None
    orphan_by_default: bool = False
    """Deleting without a propagation policy orphans dependents (v1 ReplicationController, as upstream)."""
    refusal: str = ""
    """Non-empty: the kind is listed but never stored; creating one is refused with this reason."""
    claims: Callable[[Obj], tuple[Claim, ...]] = no_claims
    """The keys an object holds exclusively (:class:`Claim`), written atomically with it."""

    @property
    def name(self) -> str:
        return self.resource.kind
