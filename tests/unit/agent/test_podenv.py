"""A container's environment as the kubelet forms it: valueFrom, envFrom, $(VAR), service links."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nestlab.agent import podenv
from nestlab.agent.podenv import EnvError, MissingSource, Sources

Obj = dict[str, Any]


def pod(container: Obj, **spec: Any) -> Obj:
    return {
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "uid": "u-1",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": 'say "hi"'},
        },
        "spec": {"nodeName": "esx-01", "serviceAccountName": "builder", "containers": [container], **spec},
    }


def cm(data: dict[str, str], binary: dict[str, bytes] | None = None) -> Obj:
    out: Obj = {"data": data}
    if binary:
        out["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    return out


def secret(data: dict[str, bytes]) -> Obj:
    return {"data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def svc(name: str, ns: str, ip: str, *ports: Obj) -> Obj:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": list(ports)}}


def env_of(container: Obj, sources: Sources | None = None, **spec: Any) -> dict[str, str]:
    return dict(podenv.container_env(pod(container, **spec), container, sources or Sources()).env)


def test_expand_follows_upstream_rules() -> None:
    lookup = podenv.mapping({"A": "1", "B": "$(A)"})
    assert podenv.expand("x$(A)y", lookup) == "x1y"
    assert podenv.expand("$$(A)", lookup) == "$(A)"  # escaped
    assert podenv.expand("$(MISSING)", lookup) == "$(MISSING)"
    assert podenv.expand("$(B)", lookup) == "$(A)"  # no recursion
    assert podenv.expand("$(A", lookup) == "$(A"  # unclosed
    assert podenv.expand("a$", lookup) == "a$"
    assert podenv.expand("$x", lookup) == "$x"


def test_value_from_configmap_secret_field_and_resource() -> None:
    container = {
        "name": "app",
        "resources": {"limits": {"memory": "256Mi", "cpu": "1500m"}, "requests": {"cpu": "250m"}},
        "env": [
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "color"}}},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {
                "name": "MEM_MI",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {
                "name": "CPU_REQ_M",
                "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
            },
            {"name": "GREETING", "value": "$(COLOR) from $(POD)"},
        ],
    }
    sources = Sources(
        configmaps={"conf": cm({"color": "blue"})},
        secrets={"creds": secret({"password": b"s3cret"})},
        pod_ip="198.18.64.7",
        host_ip="198.18.0.21",
    )
    env = env_of(container, sources)
    assert {k: env[k] for k in ("COLOR", "PASS", "POD", "NS", "APP", "NODE", "SA", "IP", "HOST")} == {
        "COLOR": "blue",
        "PASS": "s3cret",
        "POD": "web-1",
        "NS": "shop",
        "APP": "web",
        "NODE": "esx-01",
        "SA": "builder",
        "IP": "198.18.64.7",
        "HOST": "198.18.0.21",
    }
    assert (env["MEM_MI"], env["CPU"], env["CPU_REQ_M"]) == ("256", "2", "250")  # cpu rounds up
    assert env["GREETING"] == "blue from web-1"


def test_limits_without_a_limit_are_the_node_allocatable() -> None:
    container = {
        "name": "app",
        "env": [
            {"name": "M", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}
        ],
    }
    assert env_of(container, Sources(node_memory_mib=4096))["M"] == "4096"


def test_missing_sources_say_what_upstream_says_and_optional_ones_are_skipped() -> None:
    ref = {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}
    with pytest.raises(MissingSource, match=r'^configmap "absent" not found$'):
        env_of({"name": "app", "env": [ref]})
    secret_ref = {"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}
    with pytest.raises(MissingSource, match=r'^secret "gone" not found$'):
        env_of({"name": "app", "env": [secret_ref]})
    key_ref = {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "nope"}}}
    with pytest.raises(MissingSource, match=r"^couldn't find key nope in ConfigMap shop/conf$"):
        env_of({"name": "app", "env": [key_ref]}, Sources(configmaps={"conf": cm({"a": "1"})}))
    optional = {
        "name": "X",
        "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}},
    }
    assert "X" not in env_of(
        {"name": "app", "env": [optional], "envFrom": [{"secretRef": {"name": "no", "optional": True}}]}
    )


def test_env_from_prefixes_skips_invalid_names_and_env_wins() -> None:
    container = {
        "name": "app",
        "envFrom": [
            {"configMapRef": {"name": "conf"}, "prefix": "CFG_"},
            {"secretRef": {"name": "creds"}},
        ],
        "env": [{"name": "CFG_COLOR", "value": "red"}],
    }
    sources = Sources(
        configmaps={"conf": cm({"COLOR": "blue", "SIZE": "m"})},
        secrets={"creds": secret({"USER": b"admin", "1BAD": b"x", "has space": b"y"})},
    )
    formed = podenv.container_env(pod(container), container, sources)
    env = dict(formed.env)
    assert (env["CFG_COLOR"], env["CFG_SIZE"], env["USER"]) == ("red", "m", "admin")
    assert "1BAD" not in env
    assert formed.invalid_names == (
        "Keys [1BAD, has space] from the EnvFrom secret shop/creds were skipped since they are considered "
        "invalid environment variable names.",
    )


def test_service_links_as_envvars_go() -> None:
    services = [
        svc("kubernetes", "default", "198.19.0.1", {"name": "https", "port": 443, "protocol": "TCP"}),
        svc("web-front", "shop", "198.19.0.9", {"name": "http", "port": 80}, {"port": 53, "protocol": "UDP"}),
        svc("headless", "shop", "None", {"port": 80}),
        svc("other", "elsewhere", "198.19.0.10", {"port": 80}),
    ]
    env = env_of(
        {"name": "app", "env": [{"name": "URL", "value": "http://$(WEB_FRONT_SERVICE_HOST)"}]},
        Sources(services=services),
    )
    assert env["URL"] == "http://198.19.0.9"
    assert env["WEB_FRONT_SERVICE_HOST"] == "198.19.0.9"
    assert env["WEB_FRONT_SERVICE_PORT"] == "80"
    assert env["WEB_FRONT_SERVICE_PORT_HTTP"] == "80"
    assert env["WEB_FRONT_PORT"] == "tcp://198.19.0.9:80"
    assert env["WEB_FRONT_PORT_53_UDP"] == "udp://198.19.0.9:53"
    assert env["WEB_FRONT_PORT_53_UDP_PROTO"] == "udp"
    assert env["WEB_FRONT_PORT_53_UDP_PORT"] == "53"
    assert env["WEB_FRONT_PORT_53_UDP_ADDR"] == "198.19.0.9"
    assert env["KUBERNETES_SERVICE_HOST"] == "198.19.0.1"
    assert not any(k.startswith(("HEADLESS_", "OTHER_")) for k in env)
    without = env_of({"name": "app"}, Sources(services=services), enableServiceLinks=False)
    assert "WEB_FRONT_SERVICE_HOST" not in without
    assert without["KUBERNETES_SERVICE_PORT"] == "443"  # the master service always


def test_explicit_env_is_not_overridden_by_service_links() -> None:
    services = [svc("db", "shop", "198.19.0.5", {"port": 5432})]
    env = env_of(
        {"name": "app", "env": [{"name": "DB_SERVICE_HOST", "value": "mine"}]}, Sources(services=services)
    )
    assert env["DB_SERVICE_HOST"] == "mine"


def test_command_expansion_and_bad_field_paths() -> None:
    assert podenv.expand_command(["echo", "$(A)", "$$(A)"], {"A": "x"}) == ("echo", "x", "$(A)")
    with pytest.raises(EnvError, match=r"unsupported fieldPath: spec\.bogus"):
        env_of(
            {"name": "app", "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]}
        )


def test_references_cover_env_env_from_and_volumes() -> None:
    container = {
        "name": "app",
        "envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "s1"}}],
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}}],
    }
    volumes = [
        {"name": "v1", "configMap": {"name": "b"}},
        {"name": "v2", "secret": {"secretName": "s3"}},
        {"name": "v3", "projected": {"sources": [{"configMap": {"name": "c"}}, {"secret": {"name": "s4"}}]}},
    ]
    assert podenv.references(pod(container, volumes=volumes)) == ({"a", "b", "c"}, {"s1", "s2", "s3", "s4"})
