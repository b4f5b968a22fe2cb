"""What the built-in roles and the node rules grant, for the kind units' own role tests.

The built-in view/edit/admin ClusterRoles are built from every unit's ``roles`` (bootstraproles);
a unit's test asks them here instead of re-deriving them, so it checks what the server enforces.
"""

from __future__ import annotations

from nestlab.api import bootstraproles
from nestlab.api.access import NODE_RULES
from nestlab.api.rbacrules import Attributes, Rule, allows, rules_of

_ROLES: dict[str, tuple[Rule, ...]] = {
    str(role["metadata"]["name"]): rules_of(role) for role in bootstraproles.cluster_roles()
}


def _attributes(verb: str, resource: str, group: str) -> Attributes:
    plural, _, sub = resource.partition("/")
    return Attributes(verb, group, plural, sub, "name", "team")


def role_may(role: str, verb: str, resource: str, group: str = "") -> bool:
    """Whether the built-in ClusterRole ``role`` (view, edit, admin) allows ``verb`` on
    ``resource`` (``plural`` or ``plural/sub``) in a namespace it is bound in."""
    return allows(_ROLES[role], _attributes(verb, resource, group))


def node_may(verb: str, resource: str, group: str = "") -> bool:
    """Whether a node agent's rules allow ``verb`` on ``resource``."""
    return allows(NODE_RULES, _attributes(verb, resource, group))
