"""The ServiceAccounts controller's plan: a default ServiceAccount and kube-root-ca.crt per namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.controller import serviceaccounts as sa
from nestlab.errors import UsageError

CA = "-----BEGIN CERTIFICATE-----\nlab\n-----END CERTIFICATE-----\n"
ACTIVE = {"metadata": {"name": "team-a"}, "status": {"phase": "Active"}}


def test_a_new_namespace_gets_both() -> None:
    plan = sa.plan(ACTIVE, None, None, CA)
    assert plan.account == {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
    assert plan.create_ca is not None
    assert plan.create_ca["data"] == {"ca.crt": CA}
    assert plan.create_ca["metadata"]["annotations"][sa.DESCRIPTION_ANNOTATION].startswith(
        "Contains a CA bundle"
    )
    assert plan.update_ca is None


def test_nothing_to_do_when_both_exist_and_the_ca_is_current() -> None:
    current = sa.root_ca(CA)
    assert sa.plan(ACTIVE, {"metadata": {"name": "default"}}, current, CA) == sa.Plan()


def test_an_edited_ca_is_put_back() -> None:
    edited = {"metadata": {"name": sa.ROOT_CA, "resourceVersion": "7"}, "data": {"ca.crt": "junk", "x": "y"}}
    plan = sa.plan(ACTIVE, {"metadata": {"name": "default"}}, edited, CA)
    assert plan.update_ca is not None
    assert plan.update_ca["data"] == {"ca.crt": CA}
    assert plan.update_ca["metadata"]["resourceVersion"] == "7"  # compare-and-swap on the one read
    assert edited["data"]["ca.crt"] == "junk"  # the cached object is not touched


@pytest.mark.parametrize(
    "namespace",
    [
        None,
        {"metadata": {"name": "gone", "deletionTimestamp": "2026-01-01T00:00:00Z"}},
        {"metadata": {"name": "gone"}, "status": {"phase": "Terminating"}},
    ],
)
def test_terminating_or_missing_namespaces_get_nothing(namespace: dict[str, object] | None) -> None:
    assert sa.plan(namespace, None, None, CA) == sa.Plan()


def test_without_a_ca_only_the_account() -> None:
    plan = sa.plan(ACTIVE, None, None, "")
    assert plan.account is not None
    assert plan.create_ca is None


def test_an_unreadable_ca_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"kube-root-ca\.crt"):
        sa.read_ca(tmp_path / "missing.crt")
    (tmp_path / "ca.crt").write_text(CA)
    assert sa.read_ca(tmp_path / "ca.crt") == CA
    assert sa.read_ca(None) == ""
