"""The agent's ``POST /attestation`` over REAL TLS (client certificates required) with a REAL swtpm.

The verifier's side is played with the trust library: the AK certificate checks out against the
attestation CA, and the evidence verifies against the nonce it sent and a policy knowing the
measured component. Anonymous clients are refused at the TLS handshake; an unregistered host
answers 503; a malformed nonce 400.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nestlab.agent import logs
from nestlab.agent.attestation import Attestation
from nestlab.trust import akcert, attest, keys, swtpm, tpm
from nestlab.trust.measure import Measurer
from nestlab.trust.policy import Policy
from nestlab.trust.verdict import HostName
from nestlab.trust.verify import verify
from tests.integration.agent.conftest import free_port
from tests.integration.api.conftest import Pki
from tests.integration.swtpm_running import running_swtpm

pytestmark = pytest.mark.integration
HOST = HostName("esx-07")


@pytest.fixture(scope="module")
def host_tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[swtpm.Swtpm]:
    with running_swtpm(tmp_path_factory.mktemp("endpoint-swtpm")) as instance:
        yield instance


def _client(pki: Pki, with_cert: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if with_cert:
        context.load_cert_chain(str(pki.alice_cert), str(pki.alice_key))
    return context


async def _post(url: str, body: Any, context: ssl.SSLContext) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body, ssl=context) as response:
        return response.status, await response.text()


def _serve_and(attestation: Attestation, pki: Pki, requests: list[tuple[Any, bool]]) -> list[tuple[int, str]]:
    """Serve the agent's HTTPS app on loopback, send ``requests`` (body, with client cert), stop."""
    port = free_port()

    async def scenario() -> list[tuple[int, str]]:
        context = logs.tls_context(pki.server_cert, pki.server_key, pki.ca)
        runner = await logs.serve(lambda _ns, _pod: None, "127.0.0.1", port, context, attestation)
        try:
            answers = []
            for body, with_cert in requests:
                try:
                    answers.append(
                        await _post(f"https://127.0.0.1:{port}/attestation", body, _client(pki, with_cert))
                    )
                except aiohttp.ClientError as exc:
                    answers.append((0, repr(exc)))
            return answers
        finally:
            await runner.cleanup()

    return asyncio.run(scenario())


def test_a_registered_host_answers_a_challenge_that_verifies(
    host_tpm: swtpm.Swtpm, pki: Pki, tmp_path: Path
) -> None:
    host_tpm.reboot()
    measurer = Measurer(host_tpm.tpm(), tmp_path / "run" / "measurements.json")
    measurer.reset()
    (tmp_path / "agent.service").write_text("[Service]\n")
    config = measurer.measure_config(tmp_path / "agent.service")
    registration = attest.register(HOST, attest.enroll(host_tpm.tpm()), host_tpm.tpm().activate_credential)
    lab_keys = keys.ensure_lab_keys(tmp_path / "keys", "endpoint")
    directory = tmp_path / "attestation"
    directory.mkdir()
    (directory / "registration.json").write_text(json.dumps(attest.registration_to_json(registration)))
    akcert.issue_ak_certificate(lab_keys, registration, directory / "ak.crt")
    nonce = secrets.token_bytes(attest.NONCE_SIZE)

    attestation = Attestation(host_tpm.tpm(), measurer, directory)
    (code, text), (anon_code, anon_text), (bad_code, bad_text) = _serve_and(
        attestation,
        pki,
        [({"nonce": nonce.hex()}, True), ({"nonce": nonce.hex()}, False), ({"nonce": "zz"}, True)],
    )
    assert code == 200, text
    assert anon_code == 0, anon_text  # no client certificate: no TLS session at all
    assert bad_code == 400
    assert "hexadecimal" in bad_text

    answer = json.loads(text)
    assert answer["evidence"]["firmwareLog"] == ""  # a swtpm saw no firmware, whatever sysfs holds here
    received = attest.registration_from_json(answer["registration"])
    assert received == registration
    (tmp_path / "received-ak.crt").write_text(answer["akCertificate"])
    akcert.check_ak_certificate(lab_keys.ca_cert, tmp_path / "received-ak.crt", received)
    policy = Policy("endpoint", {}, frozenset(), frozenset(), frozenset({config.data["sha256"]}))
    verdict = verify(
        registration=received,
        policy=policy,
        nonce=nonce,
        evidence=attest.evidence_from_json(answer["evidence"]),
        check_signature=tpm.check_quote_signature,
        now=datetime.now(UTC),
    )
    assert verdict.passed, verdict.reasons
    replayed = verify(
        registration=received,
        policy=policy,
        nonce=secrets.token_bytes(attest.NONCE_SIZE),  # an old answer replayed for a new challenge
        evidence=attest.evidence_from_json(answer["evidence"]),
        check_signature=tpm.check_quote_signature,
        now=datetime.now(UTC),
    )
    assert not replayed.passed


def test_an_unregistered_host_answers_503(host_tpm: swtpm.Swtpm, pki: Pki, tmp_path: Path) -> None:
    attestation = Attestation(
        host_tpm.tpm(), Measurer(host_tpm.tpm(), tmp_path / "log.json"), tmp_path / "none"
    )
    [(code, text)] = _serve_and(attestation, pki, [({"nonce": "00" * 32}, True)])
    assert code == 503
    assert "not registered" in text
