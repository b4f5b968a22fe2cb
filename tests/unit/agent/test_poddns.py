"""A pod's hostname, resolv.conf and hosts file, formed as the kubelet forms them (pure logic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nestlab.agent import poddns
from nestlab.agent.poddns import ClusterDns, DnsWarning, PodDnsError, ResolvConf

CLUSTER = ClusterDns(("198.18.32.10",), "cluster.local")
HOST = poddns.parse_resolv_conf(
    "# the node's own\nnameserver 198.18.0.1\nnameserver 198.18.0.2\nsearch lab.example.\noptions edns0 timeout:2\n"
)


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-1", "namespace": "demo"}, "spec": {"containers": [], **spec}}


def resolv(cluster: ClusterDns = CLUSTER, host: ResolvConf | None = HOST, **spec: Any) -> str:
    conf, _ = poddns.resolv_conf(poddns.spec_of(pod(**spec)), cluster, host)
    return conf.text()


def test_parse_resolv_conf_like_the_kubelet() -> None:
    parsed = poddns.parse_resolv_conf(
        "nameserver 1.1.1.1\n  # comment\nsearch a.example b.example\nnameserver 8.8.8.8\n"
        "search c.example. d.example\noptions ndots:2\noptions rotate\n"
    )
    # nameservers accumulate; the last search and options lines win; a trailing dot is dropped
    assert parsed == ResolvConf(("1.1.1.1", "8.8.8.8"), ("c.example", "d.example"), ("rotate",))
    with pytest.raises(PodDnsError, match="nameserver list is empty"):
        poddns.parse_resolv_conf("nameserver\n")


def test_cluster_first_is_the_default_and_searches_the_namespace_first() -> None:
    assert resolv() == (
        "search demo.svc.cluster.local svc.cluster.local cluster.local lab.example\n"
        "nameserver 198.18.32.10\n"
        "options ndots:5\n"
    )
    assert resolv(dnsPolicy="ClusterFirst") == resolv()
    # a vSphere Pod never shares its host's network: ClusterFirstWithHostNet is ClusterFirst
    assert resolv(dnsPolicy="ClusterFirstWithHostNet") == resolv()


def test_cluster_first_without_a_resolv_conf_flag_has_only_the_cluster_searches() -> None:
    assert (
        resolv(host=None).splitlines()[0] == "search demo.svc.cluster.local svc.cluster.local cluster.local"
    )


def test_cluster_first_without_cluster_dns_falls_back_to_default_with_a_warning() -> None:
    conf, warnings = poddns.resolv_conf(poddns.spec_of(pod()), ClusterDns(), HOST)
    assert conf == HOST
    assert [w.reason for w in warnings] == ["MissingClusterDNS"]
    assert 'Falling back to "Default" policy' in warnings[0].message
    assert '"web-1_demo"' in warnings[0].message


def test_default_is_the_nodes_configuration() -> None:
    assert resolv(dnsPolicy="Default") == (
        "search lab.example\nnameserver 198.18.0.1\nnameserver 198.18.0.2\noptions edns0 timeout:2\n"
    )
    # kubelet --resolv-conf="": the node's own resolver on 127.0.0.1
    assert resolv(host=None, dnsPolicy="Default") == "search .\nnameserver 127.0.0.1\n"


def test_none_is_dns_config_only() -> None:
    config = {
        "nameservers": ["9.9.9.9"],
        "searches": ["corp.example"],
        "options": [{"name": "ndots", "value": "2"}],
    }
    assert resolv(dnsPolicy="None", dnsConfig=config) == (
        "search corp.example\nnameserver 9.9.9.9\noptions ndots:2\n"
    )


def test_dns_config_is_appended_deduplicated_and_its_options_override() -> None:
    config = {
        "nameservers": ["198.18.32.10", "9.9.9.9"],
        "searches": ["svc.cluster.local", "corp.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}, {"name": "edns0"}],
    }
    assert resolv(dnsConfig=config) == (
        "search demo.svc.cluster.local svc.cluster.local cluster.local lab.example corp.example\n"
        "nameserver 198.18.32.10\n"
        "nameserver 9.9.9.9\n"
        "options ndots:2 edns0\n"
    )


def test_merge_options_keeps_first_positions() -> None:
    assert poddns.merge_options(
        ("ndots:5", "rotate"), (("ndots", "1"), ("timeout", "3"), ("rotate", None))
    ) == (
        "ndots:1",
        "rotate",
        "timeout:3",
    )


def test_more_than_three_nameservers_are_trimmed_with_the_kubelets_warning() -> None:
    config = {"nameservers": ["9.9.9.9", "8.8.8.8", "1.1.1.1"]}
    conf, warnings = poddns.resolv_conf(poddns.spec_of(pod(dnsConfig=config)), CLUSTER, HOST)
    assert conf.nameservers == ("198.18.32.10", "9.9.9.9", "8.8.8.8")
    assert warnings == (
        DnsWarning(
            "DNSConfigForming",
            "Nameserver limits were exceeded, some nameservers have been omitted, "
            "the applied nameserver line is: 198.18.32.10 9.9.9.9 8.8.8.8",
        ),
    )


def test_search_limits_drop_long_paths_then_the_last_ones() -> None:
    many = [f"d{i}.example" for i in range(40)]
    conf, warnings = poddns.resolv_conf(
        poddns.spec_of(pod(dnsPolicy="None", dnsConfig={"nameservers": ["9.9.9.9"], "searches": many})),
        CLUSTER,
        HOST,
    )
    assert conf.searches == tuple(many[: poddns.MAX_SEARCH_PATHS])
    assert [w.reason for w in warnings] == ["DNSConfigForming"]
    assert warnings[0].message.startswith("Search Line limits were exceeded")

    too_long = "x" * 254
    conf, _ = poddns.resolv_conf(
        poddns.spec_of(
            pod(dnsPolicy="None", dnsConfig={"nameservers": ["9.9.9.9"], "searches": ["a.example", too_long]})
        ),
        CLUSTER,
        HOST,
    )
    assert conf.searches == ("a.example",)

    wide = [f"{i:02d}" + "y" * 98 for i in range(25)]  # 25 x 100 characters + spaces > 2048
    conf, _ = poddns.resolv_conf(
        poddns.spec_of(pod(dnsPolicy="None", dnsConfig={"nameservers": ["9.9.9.9"], "searches": wide})),
        CLUSTER,
        HOST,
    )
    assert len(" ".join(conf.searches)) <= poddns.MAX_SEARCH_CHARS
    assert conf.searches == tuple(wide[:20])


def test_hosts_file_is_the_kubelets_managed_file() -> None:
    spec = poddns.spec_of(pod(hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]))
    names = poddns.pod_names(spec, CLUSTER, HOST, "198.19.1.5")
    assert names.hostname == "web-1"
    assert names.hosts == (
        "# Kubernetes-managed hosts file.\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "fe00::0\tip6-mcastprefix\n"
        "fe00::1\tip6-allnodes\n"
        "fe00::2\tip6-allrouters\n"
        "198.19.1.5\tweb-1\n"
        "\n"
        "# Entries added by HostAliases.\n"
        "10.1.2.3\tfoo.local\tbar.local\n"
    )


def test_hostname_and_subdomain_give_the_pod_its_fqdn() -> None:
    spec = poddns.spec_of(pod(hostname="db-0", subdomain="db"))
    names = poddns.pod_names(spec, CLUSTER, HOST, "198.19.1.6")
    assert names.hostname == "db-0"
    assert "198.19.1.6\tdb-0.db.demo.svc.cluster.local\tdb-0\n" in names.hosts
    fqdn = poddns.pod_names(
        poddns.spec_of(pod(hostname="db-0", subdomain="db", setHostnameAsFQDN=True)), CLUSTER, HOST, None
    )
    assert fqdn.hostname == "db-0.db.demo.svc.cluster.local"
    assert "db-0" not in fqdn.hosts  # no address, no line for the pod itself


def test_long_names_are_truncated_and_an_fqdn_over_64_is_refused() -> None:
    long_pod = {"metadata": {"name": "a" * 62 + "-b", "namespace": "demo"}, "spec": {}}
    assert poddns.hostname_and_domain(poddns.spec_of(long_pod), "cluster.local") == ("a" * 62, "")
    spec = poddns.spec_of(pod(hostname="h" * 40, subdomain="sub", setHostnameAsFQDN=True))
    with pytest.raises(
        PodDnsError, match=r"FQDN h+\.sub\.demo\.svc\.cluster\.local is too long \(64 characters is the max"
    ):
        poddns.pod_names(spec, CLUSTER, HOST, None)


def test_bad_shapes_are_refused_with_the_field() -> None:
    with pytest.raises(PodDnsError, match=r"spec.dnsPolicy 'Other'"):
        poddns.spec_of(pod(dnsPolicy="Other"))
    with pytest.raises(PodDnsError, match=r"spec.dnsConfig.options\[0\].name"):
        poddns.spec_of(pod(dnsConfig={"options": [{"value": "1"}]}))
    with pytest.raises(PodDnsError, match=r"spec.hostAliases\[0\].ip"):
        poddns.spec_of(pod(hostAliases=[{"hostnames": ["a"]}]))


def test_read_host_config(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 198.18.0.1\n")
    assert poddns.read_host_config(path) == ResolvConf(("198.18.0.1",))
    assert poddns.read_host_config(None) is None
    with pytest.raises(PodDnsError, match=r"--resolv-conf"):
        poddns.read_host_config(tmp_path / "missing")
