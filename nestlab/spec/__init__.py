"""The lab spec: the YAML model, its validation, placement and address plan. Pure logic only.

Nothing here starts processes, touches the network or imports Pulumi/Ansible (an import-linter
contract enforces it), so every rule about what a lab looks like is unit-testable on its own.
"""

from nestlab.spec.errors import SpecError, SpecIssue
from nestlab.spec.model import Lab, NodeName, Role
from nestlab.spec.parse import load_spec, parse_spec
from nestlab.spec.plan import Plan, PlannedNode, make_plan

__all__ = [
    "Lab",
    "NodeName",
    "Plan",
    "PlannedNode",
    "Role",
    "SpecError",
    "SpecIssue",
    "load_spec",
    "make_plan",
    "parse_spec",
]
