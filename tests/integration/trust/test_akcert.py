"""AK certificates issued by the lab attestation CA for a registered swtpm AK, and what they refuse."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from nestlab.trust import akcert, keys
from nestlab.trust.errors import SignatureError
from nestlab.trust.verdict import HostName
from nestlab.trust.verify import Registration

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab_keys(tmp_path_factory: pytest.TempPathFactory) -> keys.LabKeys:
    return keys.ensure_lab_keys(tmp_path_factory.mktemp("keys") / "lab", "demo")


def test_issued_certificate_checks_out(
    lab_keys: keys.LabKeys, registered: Registration, tmp_path: Path
) -> None:
    certificate = akcert.issue_ak_certificate(lab_keys, registered, tmp_path / "esx-01.crt")
    akcert.check_ak_certificate(lab_keys.ca_cert, certificate, registered)


def test_certificate_is_refused_for_another_host_or_key(
    lab_keys: keys.LabKeys, registered: Registration, tmp_path: Path
) -> None:
    certificate = akcert.issue_ak_certificate(lab_keys, registered, tmp_path / "esx-01.crt")
    with pytest.raises(SignatureError, match="not issued to esx-02"):
        akcert.check_ak_certificate(
            lab_keys.ca_cert, certificate, replace(registered, host=HostName("esx-02"))
        )
    with pytest.raises(SignatureError, match="certifies another key"):
        akcert.check_ak_certificate(
            lab_keys.ca_cert, certificate, replace(registered, ak_public=registered.ek_public)
        )


def test_certificate_from_another_labs_ca_is_refused(
    lab_keys: keys.LabKeys, registered: Registration, tmp_path: Path
) -> None:
    other = keys.ensure_lab_keys(tmp_path / "other", "other")
    certificate = akcert.issue_ak_certificate(other, registered, tmp_path / "esx-01.crt")
    with pytest.raises(SignatureError, match="not signed by the lab attestation CA"):
        akcert.check_ak_certificate(lab_keys.ca_cert, certificate, registered)
