"""Audit policy: upstream's example policy and checker cases, and errors that name line and field."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
import yaml

from nestlab.api.auditpolicy import AuditPolicyError, Level, Request, load, parse
from nestlab.api.main import parse_args
from nestlab.errors import UsageError

# The example policy of the Kubernetes "Auditing" page, verbatim.
UPSTREAM_EXAMPLE = """\
apiVersion: audit.k8s.io/v1 # This is required.
kind: Policy
# Don't generate audit events for all requests in RequestReceived stage.
omitStages:
  - "RequestReceived"
rules:
  # Log pod changes at RequestResponse level
  - level: RequestResponse
    resources:
    - group: ""
      # Resource "pods" doesn't match requests to any subresource of pods,
      # which is consistent with the RBAC policy.
      resources: ["pods"]
  # Log "pods/log", "pods/status" at Metadata level
  - level: Metadata
    resources:
    - group: ""
      resources: ["pods/log", "pods/status"]

  # Don't log requests to a configmap called "controller-leader"
  - level: None
    resources:
    - group: ""
      resources: ["configmaps"]
      resourceNames: ["controller-leader"]

  # Don't log watch requests by the "system:kube-proxy" on endpoints or services
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
    - group: "" # core API group
      resources: ["endpoints", "services"]

  # Don't log authenticated requests to certain non-resource URL paths.
  - level: None
    userGroups: ["system:authenticated"]
    nonResourceURLs:
    - "/api*" # Wildcard matching.
    - "/version"

  # Log the request body of configmap changes in kube-system.
  - level: Request
    resources:
    - group: "" # core API group
      resources: ["configmaps"]
    # This rule only applies to resources in the "kube-system" namespace.
    # The empty string "" can be used to select non-namespaced resources.
    namespaces: ["kube-system"]

  # Log configmap and secret changes in all other namespaces at the Metadata level.
  - level: Metadata
    resources:
    - group: "" # core API group
      resources: ["secrets", "configmaps"]

  # Log all other resources in core and extensions at the Request level.
  - level: Request
    resources:
    - group: "" # core API group
    - group: "extensions" # Version of group should NOT be included.

  # A catch-all rule to log all other requests at the Metadata level.
  - level: Metadata
    # Long-running requests like watches that fall under this rule will not
    # generate an audit event in RequestReceived.
    omitStages:
      - "RequestReceived"
"""


def _res(
    resource: str, verb: str = "get", *, group: str = "", sub: str = "", ns: str = "default", name: str = "x",
    user: str = "alice", groups: frozenset[str] = frozenset({"system:authenticated"}),
) -> Request:  # fmt: skip
    return Request(user, groups, verb, True, group, resource, sub, ns, name)


def _path(
    path: str, user: str = "alice", groups: frozenset[str] = frozenset({"system:authenticated"})
) -> Request:
    return Request(user, groups, "get", False, path=path)


@pytest.mark.parametrize(
    ("request_", "level"),
    [
        (_res("pods", "create"), Level.REQUEST_RESPONSE),
        (_res("pods", sub="log"), Level.METADATA),
        (_res("pods", sub="status", verb="update"), Level.METADATA),
        (_res("pods", sub="exec", verb="create"), Level.REQUEST),  # core catch-all, not "pods"
        (_res("configmaps", name="controller-leader"), Level.NONE),
        (_res("configmaps", name="other", ns="kube-system", verb="update"), Level.REQUEST),
        (_res("configmaps", name="other", ns="team-a"), Level.METADATA),
        (_res("secrets"), Level.METADATA),
        (_res("endpoints", "watch", user="system:kube-proxy"), Level.NONE),
        (_res("endpoints", "list", user="system:kube-proxy"), Level.REQUEST),
        (_res("endpoints", "watch", user="bob"), Level.REQUEST),
        (_path("/apis/apps/v1"), Level.NONE),
        (_path("/version"), Level.NONE),
        (_path("/healthz"), Level.METADATA),
        (_res("deployments", group="extensions"), Level.REQUEST),
        (_res("deployments", group="apps"), Level.METADATA),
    ],
)
def test_upstream_example_policy(request_: Request, level: Level) -> None:
    policy = parse(UPSTREAM_EXAMPLE)
    assert policy.evaluate(request_).level is level


def test_omit_stages_are_the_policys_and_the_rules() -> None:
    policy = parse(UPSTREAM_EXAMPLE)
    assert policy.evaluate(_res("pods")).omit_stages == {"RequestReceived"}
    assert policy.evaluate(_res("deployments", group="apps")).omit_stages == {"RequestReceived"}


@pytest.mark.parametrize(
    ("spec", "request_", "matches"),
    [
        ("*/log", _res("pods", sub="log"), True),
        ("*/log", _res("pods"), False),
        ("pods/*", _res("pods", sub="exec"), True),
        ("pods/*", _res("pods"), True),  # upstream checker.go compares "pods" with the resource alone
        ("pods/*", _res("services", sub="status"), False),
        ("*", _res("pods", sub="log"), True),
        ("pods", _res("pods", sub="log"), False),
        ("serviceaccounts/token", _res("serviceaccounts", sub="token", verb="create"), True),
    ],
)
def test_resource_forms(spec: str, request_: Request, matches: bool) -> None:
    policy = parse(
        f'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Request\n  resources: [{{group: "", resources: ["{spec}"]}}]\n'
    )
    assert (policy.evaluate(request_).level is Level.REQUEST) is matches


def test_resource_names_and_namespaces_and_users() -> None:
    policy = parse(
        """apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  users: [system:apiserver]
- level: RequestResponse
  namespaces: [""]
  resources: [{group: rbac.authorization.k8s.io}]
- level: Request
  resources: [{group: "", resources: [secrets], resourceNames: [s1]}]
- level: Metadata
  nonResourceURLs: ["*"]
"""
    )
    assert policy.evaluate(_res("pods", user="system:apiserver")).level is Level.NONE
    assert (
        policy.evaluate(_res("clusterroles", group="rbac.authorization.k8s.io", ns="")).level
        is Level.REQUEST_RESPONSE
    )
    assert policy.evaluate(_res("roles", group="rbac.authorization.k8s.io")).level is Level.NONE
    assert policy.evaluate(_res("secrets", name="s1")).level is Level.REQUEST
    assert policy.evaluate(_res("secrets", name="")).level is Level.NONE  # a list has no name
    assert policy.evaluate(_path("/livez")).level is Level.METADATA
    assert policy.evaluate(Request(verb="get", path="/livez", authenticated=False)).level is Level.METADATA


def test_user_rules_never_match_an_unauthenticated_request() -> None:
    policy = parse(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- {level: Metadata, userGroups: [system:unauthenticated, x]}\n"
    )
    assert policy.evaluate(Request(verb="get", path="/", authenticated=False)).level is Level.NONE


def test_no_rule_matching_means_none_and_empty_policy_logs_nothing() -> None:
    assert (
        parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n").evaluate(_res("pods")).level
        is Level.NONE
    )


def test_omit_managed_fields_rule_overrides_policy() -> None:
    policy = parse(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitManagedFields: true\nrules:\n"
        "- {level: Request, verbs: [create], omitManagedFields: false}\n- {level: Request}\n"
    )
    assert policy.evaluate(_res("pods", "create")).omit_managed_fields is False
    assert policy.evaluate(_res("pods", "update")).omit_managed_fields is True


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n",
            "line 4 rules[0].level: Unsupported value 'Loud'",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- verbs: [get]\n",
            "rules[0].level: Required value",
        ),
        (
            "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: []\n",
            "line 1 apiVersion: must be audit.k8s.io/v1",
        ),
        ("apiVersion: audit.k8s.io/v1\nkind: Policy\n", "rules: a list of rules is required"),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n- level: Metadata\n  omitStages: [Done]\n",
            "line 6 rules[1].omitStages[0]: Unsupported value 'Done'",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [/x]\n  resources: [{group: ''}]\n",
            "rules cannot apply to both regular resources and non-resource URLs",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  resources:\n  - {resourceNames: [a]}\n",
            "rules[0].resources[0].resourceNames: using resource names requires at least one resource",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [healthz]\n",
            "must start with '/'",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  verb: [get]\n",
            "line 5 rules[0].verb: unknown field",
        ),
        ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [", "not valid YAML"),
    ],
)
def test_bad_policies_name_line_and_field(text: str, needle: str) -> None:
    with pytest.raises(AuditPolicyError) as caught:
        parse(text, source="policy.yaml")
    assert needle in str(caught.value)
    assert "policy.yaml" in str(caught.value)


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AuditPolicyError, match=r"cannot read audit policy .*missing\.yaml"):
        load(tmp_path / "missing.yaml")


def _render_role_policy() -> str:
    """roles/control_plane's policy template with the role's defaults (Ansible's filters stubbed)."""
    role = Path(__file__).parents[3] / "roles/control_plane"
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - YAML, not HTML
    env.filters["to_json"] = json.dumps
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    template = env.from_string((role / "templates/audit-policy.yaml.j2").read_text())
    return template.render(ansible_managed="Ansible managed", **defaults)


def test_the_roles_default_policy_is_valid_and_sensible() -> None:
    policy = parse(_render_role_policy())
    system = frozenset({"system:nodes", "system:authenticated"})
    assert (
        policy.evaluate(
            _res("leases", "update", group="coordination.k8s.io", user="system:node:esx-01", groups=system)
        ).level
        is Level.NONE
    )
    assert (
        policy.evaluate(_res("events", "create", user="system:node:esx-01", groups=system)).level
        is Level.NONE
    )
    assert policy.evaluate(_path("/readyz", user="")).level is Level.NONE
    assert policy.evaluate(_res("secrets", "create")).level is Level.METADATA
    assert policy.evaluate(_res("pods", "get")).level is Level.METADATA
    assert policy.evaluate(_res("pods", "create")).level is Level.REQUEST
    assert (
        policy.evaluate(_res("rolebindings", "create", group="rbac.authorization.k8s.io")).level
        is Level.REQUEST_RESPONSE
    )
    assert policy.evaluate(_res("events", "create", user="alice")).level is Level.REQUEST
    controller = frozenset({"nestlab:admins"})
    assert (
        policy.evaluate(_res("endpoints", "list", user="controller", groups=controller)).level is Level.NONE
    )
    assert policy.evaluate(_res("endpoints", "list", user="alice", groups=controller)).level is Level.METADATA
    assert policy.evaluate(_path("/nestlab/v1/login")).level is Level.METADATA


def test_every_audit_default_of_the_role_is_documented_and_used_by_the_unit() -> None:
    role = Path(__file__).parents[3] / "roles/control_plane"
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]
    unit = (role / "templates/nestlab-apiserver.service.j2").read_text()
    audit_vars = [name for name in defaults if name.startswith("control_plane_audit_")]
    assert len(audit_vars) >= 6
    for name in audit_vars:
        assert name in specs, name
        assert specs[name]["default"] == defaults[name], name
    for flag, var in [
        ("--audit-policy-file", "control_plane_audit_policy"),
        ("--audit-log-path", "control_plane_audit_log"),
        ("--audit-log-maxsize", "control_plane_audit_log_maxsize_mb"),
        ("--audit-log-maxbackup", "control_plane_audit_log_maxbackup"),
    ]:
        assert f"{flag}={{{{ {var} }}}}" in unit


def test_the_api_server_flags(tmp_path: Path) -> None:
    policy = tmp_path / "audit-policy.yaml"
    policy.write_text(_render_role_policy())
    base = ["--etcd-servers", "http://127.0.0.1:2379"]
    config = parse_args([*base, "--audit-policy-file", str(policy), "--audit-log-path", "/var/log/nestlab/audit.log",
                         "--audit-log-maxsize", "20", "--audit-log-maxbackup", "5"])  # fmt: skip
    assert config.audit_policy_file == policy
    assert config.audit_log_path == "/var/log/nestlab/audit.log"
    assert config.audit_log_maxsize_mb == 20
    assert config.audit_log_maxbackup == 5
    assert parse_args(base).audit_policy_file is None
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n")
    with pytest.raises(UsageError, match=r"audit-policy.yaml: line 4 rules\[0\]\.level"):
        parse_args([*base, "--audit-policy-file", str(policy)])
    with pytest.raises(UsageError, match="must be 0 or more"):
        parse_args([*base, "--audit-log-maxsize", "-1"])
