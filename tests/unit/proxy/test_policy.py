"""NetworkPolicy compiled to nftables: what a new connection meets, and the incremental transactions.

The verdicts come from :mod:`tests.unit.proxy.nfteval` walking the compiled chains as nft would;
tests/integration/proxy/test_policy_nft.py checks the same rules in the kernel with real traffic.
"""

from __future__ import annotations

from typing import Any

from nestlab.proxy import policy, policynft
from nestlab.proxy.policy import Pod
from tests.unit.proxy.nfteval import Packet, verdict

HOST = "esx-01"
WEB = Pod("a", "web", "10.0.0.2", HOST, {"app": "web"}, (("http", "TCP", 8080),))
DB = Pod("a", "db", "10.0.0.4", HOST, {"app": "db"})
CLIENT_B = Pod("b", "client", "10.0.0.3", HOST, {"app": "client"})
REMOTE_B = Pod("b", "remote", "10.0.1.3", "esx-02", {"app": "client"})
CLIENT_C = Pod("c", "client", "10.0.1.5", "esx-02", {"app": "client"})
PODS = [WEB, DB, CLIENT_B, REMOTE_B, CLIENT_C]
NAMESPACES = policy.namespace_labels(
    [
        {"metadata": {"name": "a"}},
        {"metadata": {"name": "b", "labels": {"team": "b"}}},
        {"metadata": {"name": "c"}},
    ]
)
DNS = "198.18.0.21"  # a control-plane node serving DNS: the endpoint kube-dns is DNATed to


def netpol(name: str, namespace: str = "a", **spec: Any) -> dict[str, Any]:
    spec.setdefault("podSelector", {})
    if "policyTypes" not in spec:
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def compiled(*policies: dict[str, Any], pods: list[Pod] | None = None, node: str = HOST) -> policy.Ruleset:
    return policy.compile_ruleset(node, PODS if pods is None else pods, NAMESPACES, policies)


def allowed(
    rules: policy.Ruleset, src: Pod | str, dst: Pod | str, proto: str = "tcp", port: int = 80
) -> bool:
    source = src.ip if isinstance(src, Pod) else src
    target = dst.ip if isinstance(dst, Pod) else dst
    return verdict(rules, Packet(source, target, proto, port)) == "accept"


def test_default_allow_without_policies() -> None:
    rules = compiled()
    assert all(allowed(rules, a, b) for a in PODS for b in PODS if a != b)
    assert rules.sets[policy.INGRESS_ISOLATED].elements == frozenset()
    assert not [name for name in rules.chains if name.startswith("np_")]


def test_deny_all_ingress_isolates_only_the_local_selected_pods() -> None:
    rules = compiled(netpol("deny-all"))
    assert not allowed(rules, CLIENT_B, WEB)
    assert not allowed(rules, REMOTE_B, WEB)
    assert not allowed(rules, WEB, DB)  # same namespace: selected too
    assert allowed(rules, WEB, CLIENT_B)  # egress is not isolated, namespace b is not selected
    assert allowed(rules, WEB, DNS, "udp", 53)
    assert rules.sets[policy.INGRESS_ISOLATED].elements == {WEB.ip, DB.ip}
    other_host = compiled(netpol("deny-all"), node="esx-02")  # a's pods are not there: nothing to do
    assert other_host.sets[policy.INGRESS_ISOLATED].elements == frozenset()


def test_allowing_one_namespace_lets_exactly_its_pods_in() -> None:
    by_label = netpol("from-b", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}])
    by_name = netpol(
        "from-b",
        ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}}}]}],
    )
    for allow in (by_label, by_name):
        rules = compiled(netpol("deny-all"), allow)
        assert allowed(rules, CLIENT_B, WEB)
        assert allowed(rules, REMOTE_B, WEB)  # peers on other hosts count too
        assert not allowed(rules, CLIENT_C, WEB)
        assert not allowed(rules, DB, WEB)  # not even its own namespace


def test_pod_and_namespace_selectors_in_one_peer_are_anded() -> None:
    both = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "client"}}}
    rules = compiled(netpol("clients", ingress=[{"from": [both]}]))
    assert allowed(rules, CLIENT_B, WEB)
    assert allowed(rules, CLIENT_C, WEB)
    assert not allowed(rules, DB, WEB)
    same_namespace_only = compiled(
        netpol("db", ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "db"}}}]}])
    )
    assert allowed(same_namespace_only, DB, WEB)
    assert not allowed(same_namespace_only, CLIENT_B, WEB)


def test_ip_block_with_except() -> None:
    block = {"ipBlock": {"cidr": "10.0.0.7/16", "except": ["10.0.1.0/24", "10.0.1.128/25"]}}
    rules = compiled(netpol("cidr", ingress=[{"from": [block]}]))
    assert allowed(rules, CLIENT_B, WEB)  # 10.0.0.3: inside the cidr
    assert not allowed(rules, CLIENT_C, WEB)  # 10.0.1.5: in the exception
    assert not allowed(rules, "192.0.2.1", WEB)  # outside
    chain = rules.chains[policy.policy_id("a", "cidr") + "_in"]
    assert chain[0].startswith("ip saddr 10.0.0.0/16 ip saddr != { 10.0.1.0/24 } accept")


def test_egress_deny_blocks_dns_unless_allowed() -> None:
    deny = netpol("no-egress", policyTypes=["Egress"])
    rules = compiled(deny)
    assert not allowed(rules, WEB, DNS, "udp", 53)
    assert not allowed(rules, WEB, CLIENT_B)
    assert allowed(rules, CLIENT_B, WEB)  # ingress is not isolated by an Egress-only policy
    dns = netpol("dns", policyTypes=["Egress"], egress=[{"ports": [{"port": 53, "protocol": "UDP"}]}])
    rules = compiled(deny, dns)
    assert allowed(rules, WEB, DNS, "udp", 53)
    assert not allowed(rules, WEB, DNS, "tcp", 53)
    assert not allowed(rules, WEB, CLIENT_B)


def test_ports_and_end_port() -> None:
    ports = [{"port": 8000, "endPort": 9000, "protocol": "TCP"}, {"protocol": "UDP"}]
    rules = compiled(netpol("range", ingress=[{"ports": ports}]))
    assert allowed(rules, CLIENT_C, WEB, "tcp", 8000)
    assert allowed(rules, CLIENT_C, WEB, "tcp", 9000)
    assert not allowed(rules, CLIENT_C, WEB, "tcp", 9001)
    assert not allowed(rules, CLIENT_C, WEB, "tcp", 80)
    assert allowed(rules, CLIENT_C, WEB, "udp", 5353)
    assert not allowed(rules, CLIENT_C, WEB, "sctp", 8000)
    single = compiled(netpol("one", ingress=[{"ports": [{"port": 80, "protocol": "TCP"}]}]))
    assert allowed(single, CLIENT_C, WEB, "tcp", 80)
    assert not allowed(single, CLIENT_C, WEB, "udp", 80)


def test_named_ports_resolve_on_the_destination_pod() -> None:
    rules = compiled(netpol("http", ingress=[{"ports": [{"port": "http", "protocol": "TCP"}]}]))
    assert allowed(rules, CLIENT_B, WEB, "tcp", 8080)
    assert not allowed(rules, CLIENT_B, WEB, "tcp", 80)
    assert not allowed(rules, CLIENT_B, DB, "tcp", 8080)  # db declares no port named http
    egress = netpol(
        "to-http", "b", policyTypes=["Egress"], egress=[{"ports": [{"port": "http", "protocol": "TCP"}]}]
    )
    rules = compiled(egress)
    assert allowed(rules, CLIENT_B, WEB, "tcp", 8080)
    assert not allowed(rules, CLIENT_B, DB, "tcp", 8080)


def test_both_ends_local_and_isolated_need_both_sides() -> None:
    web_in = netpol(
        "web-in", podSelector={"matchLabels": {"app": "web"}}, ingress=[{"from": [{"podSelector": {}}]}]
    )
    db_out = netpol("db-out", podSelector={"matchLabels": {"app": "db"}}, policyTypes=["Egress"])
    assert not allowed(compiled(web_in, db_out), DB, WEB)  # web lets db in, db may not go out
    db_out_web = netpol(
        "db-out",
        podSelector={"matchLabels": {"app": "db"}},
        policyTypes=["Egress"],
        egress=[{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}]}],
    )
    rules = compiled(web_in, db_out_web)
    assert allowed(rules, DB, WEB)
    db_out_all = netpol(
        "db-out", podSelector={"matchLabels": {"app": "db"}}, policyTypes=["Egress"], egress=[{}]
    )
    web_closed = netpol("web-in", podSelector={"matchLabels": {"app": "web"}})
    assert not allowed(compiled(db_out_all, web_closed), DB, WEB)  # db may go out, web lets nobody in
    assert allowed(compiled(db_out_all, web_closed), DB, CLIENT_B)
    assert not allowed(rules, DB, CLIENT_B)
    assert not allowed(rules, CLIENT_C, WEB)


def test_policies_add_up() -> None:
    tcp80 = netpol("tcp80", ingress=[{"ports": [{"port": 80, "protocol": "TCP"}]}])
    from_b = netpol("from-b", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}])
    rules = compiled(tcp80, from_b)
    assert allowed(rules, CLIENT_C, WEB, "tcp", 80)
    assert allowed(rules, CLIENT_B, WEB, "tcp", 443)
    assert not allowed(rules, CLIENT_C, WEB, "tcp", 443)


def test_rule_count_grows_with_policies_not_pods() -> None:
    many = [Pod("a", f"web-{i}", f"10.0.2.{i}", HOST, {"app": "web"}) for i in range(1, 200)]
    policies = [netpol("deny-all"), netpol("from-b", ingress=[{"from": [{"namespaceSelector": {}}]}])]
    few_rules = compiled(*policies, pods=PODS)
    many_rules = compiled(*policies, pods=PODS + many)
    assert sum(map(len, few_rules.chains.values())) == sum(map(len, many_rules.chains.values()))
    assert len(many_rules.sets[policy.INGRESS_ISOLATED].elements) == 2 + len(many)


def test_pod_arrival_is_one_element_per_set() -> None:
    policies = [
        netpol("deny-all"),
        netpol("from-b", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}]),
    ]
    before = compiled(*policies)
    newcomer = Pod("b", "late", "10.0.1.9", "esx-03", {"app": "client"})
    after = compiled(*policies, pods=[*PODS, newcomer])
    commands = policynft.diff(before, after)
    peers = policy.policy_id("a", "from-b") + "_in0"
    assert commands == [f"add element ip nestlab-policy {peers} {{ 10.0.1.9 }}"]
    assert policynft.diff(after, after) == []


def test_policy_removal_deletes_its_chains_after_unhooking_them() -> None:
    policies = [netpol("deny-all"), netpol("from-b", ingress=[{"from": [{"namespaceSelector": {}}]}])]
    before, after = compiled(*policies), compiled(policies[0])
    commands = policynft.diff(before, after)
    ident = policy.policy_id("a", "from-b")
    unhook = commands.index(f"flush chain ip nestlab-policy {policy.INGRESS}")
    delete_chain = commands.index(f"delete chain ip nestlab-policy {ident}_in")
    assert commands.index(f"flush chain ip nestlab-policy {ident}_in") < delete_chain
    assert unhook < delete_chain < commands.index(f"delete set ip nestlab-policy {ident}_in0")
    assert not any("deny-all" in c and "delete" in c for c in commands)


def test_full_render_replaces_the_table_in_one_transaction() -> None:
    commands = policynft.full(compiled(netpol("deny-all")))
    assert commands[:3] == [
        "add table ip nestlab-policy",
        "delete table ip nestlab-policy",
        "add table ip nestlab-policy",
    ]
    assert all(" ip nestlab-policy " in f"{c} " for c in commands)  # never another table
    assert (
        "add chain ip nestlab-policy gate { type filter hook forward priority filter; policy accept; }"
        in commands
    )
    # every chain exists before the first rule refers to one
    first_rule = next(i for i, c in enumerate(commands) if c.startswith("add rule"))
    assert all(not c.startswith("add chain") for c in commands[first_rule:])


def test_pod_of_reads_the_api_pod() -> None:
    obj: dict[str, Any] = {
        "metadata": {"namespace": "a", "name": "web", "labels": {"app": "web"}},
        "spec": {
            "nodeName": HOST,
            "containers": [
                {"name": "c", "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9}]}
            ],
        },
        "status": {"phase": "Running", "podIP": "10.0.0.2"},
    }
    assert policy.pod_of(obj) == WEB
    assert policy.pod_of({**obj, "status": {"phase": "Pending"}}) is None
    assert policy.pod_of({**obj, "status": {"phase": "Succeeded", "podIP": "10.0.0.2"}}) is None
