"""Pod DNS fields (dnsPolicy, dnsConfig, hostAliases, hostname, subdomain): upstream causes and wording."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api.kinds import common, podspec
from nestlab.api.kinds import pod as pod_kind
from nestlab.api.status import Cause


def pod(**spec: Any) -> dict[str, Any]:
    obj = {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "i"}], **spec}}
    pod_kind.default(obj)
    return obj


def causes(**spec: Any) -> list[Cause]:
    return pod_kind.validate(pod(**spec))


def test_valid_dns_fields_pass_and_an_empty_policy_defaults_to_cluster_first() -> None:
    assert (
        causes(
            dnsPolicy="None",
            dnsConfig={
                "nameservers": ["9.9.9.9", "2001:db8::1"],
                "searches": ["corp.example.", "svc.cluster.local"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
            },
            hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]}],
            hostname="db-0",
            subdomain="db",
        )
        == []
    )
    assert pod(dnsPolicy="")["spec"]["dnsPolicy"] == "ClusterFirst"
    assert pod()["spec"]["dnsPolicy"] == "ClusterFirst"


SUPPORTED = '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"'
IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"dnsPolicy": "Cluster"},
            Cause(
                "spec.dnsPolicy",
                f'Unsupported value: "Cluster": supported values: {SUPPORTED}',
                "FieldValueNotSupported",
            ),
        ),
        (
            {"dnsPolicy": "None"},
            Cause(
                "spec.dnsConfig",
                "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
                "FieldValueRequired",
            ),
        ),
        (
            {"dnsPolicy": "None", "dnsConfig": {"searches": ["a.example"]}},
            Cause(
                "spec.dnsConfig.nameservers",
                "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
                "FieldValueRequired",
            ),
        ),
        (
            {"dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]}},
            Cause(
                "spec.dnsConfig.nameservers",
                'Invalid value: []string{"1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"}: '
                "must not have more than 3 nameservers",
            ),
        ),
        (
            {"dnsConfig": {"nameservers": ["1.1.1"]}},
            Cause("spec.dnsConfig.nameservers[0]", f'Invalid value: "1.1.1": {IP_MSG}'),
        ),
        (
            {"dnsConfig": {"searches": ["Bad_Domain"]}},
            Cause(
                "spec.dnsConfig.searches[0]",
                f'Invalid value: "Bad_Domain": {common.SUBDOMAIN_MSG}',
            ),
        ),
        (
            {"dnsConfig": {"options": [{"value": "2"}]}},
            Cause("spec.dnsConfig.options[0]", "Required value: must not be empty", "FieldValueRequired"),
        ),
        (
            {"dnsConfig": {"nameservers": "1.1.1.1"}},
            Cause("spec.dnsConfig.nameservers", "Invalid value: must be a list", "FieldValueTypeInvalid"),
        ),
        (
            {"hostAliases": [{"hostnames": ["a"]}]},
            Cause("spec.hostAliases[0].ip", "Required value", "FieldValueRequired"),
        ),
        (
            {"hostAliases": [{"ip": "10.0.0.256", "hostnames": ["a"]}]},
            Cause("spec.hostAliases[0].ip", f'Invalid value: "10.0.0.256": {IP_MSG}'),
        ),
        (
            {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["ok", "Not_OK"]}]},
            Cause("spec.hostAliases[0].hostnames[1]", f'Invalid value: "Not_OK": {common.SUBDOMAIN_MSG}'),
        ),
        (
            {"hostname": "db.0"},
            Cause("spec.hostname", f'Invalid value: "db.0": {common.LABEL_MSG}'),
        ),
        (
            {"subdomain": "s" * 64},
            Cause("spec.subdomain", f'Invalid value: "{"s" * 64}": must be no more than 63 characters'),
        ),
    ],
)
def test_bad_dns_fields_get_upstream_causes(spec: dict[str, Any], expected: Cause) -> None:
    assert causes(**spec) == [expected]


def test_search_limits() -> None:
    many = [f"d{i}.example" for i in range(33)]
    (cause,) = causes(dnsConfig={"searches": many})
    assert cause.field == "spec.dnsConfig.searches"
    assert cause.message.endswith("must not have more than 32 search paths")
    wide = ["x" * 63 + "." + "y" * 63 for _ in range(16)]  # 16 x 127 + 15 spaces = 2047: fits
    assert causes(dnsConfig={"searches": wide}) == []
    (cause,) = causes(dnsConfig={"searches": [*wide, "z"]})
    assert cause.message.endswith(
        "must not have more than 2048 characters (including spaces) in the search list"
    )


def test_templates_are_checked_the_same_way() -> None:
    template = {"containers": [{"name": "c", "image": "i"}], "dnsPolicy": "None"}
    podspec.default_spec(template)
    assert [c.field for c in podspec.check_spec(template, "spec.template.spec")] == [
        "spec.template.spec.dnsConfig"
    ]
