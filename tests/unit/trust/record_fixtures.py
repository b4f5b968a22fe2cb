"""Record the unit tests' fixtures from a real swtpm: `.venv/bin/python -m tests.unit.trust.record_fixtures`.

One host boot: agent package and config measured, one pod launched, then a quote over the
measured PCRs for a fixed nonce. The unit tests replay, parse and judge these bytes without a TPM.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from nestlab.trust import attest, measure, swtpm
from nestlab.trust.verdict import HostName

FIXTURES = Path(__file__).parent / "fixtures"
NONCE = bytes.fromhex("6e65737461622d756e69742d746573742d6e6f6e63652d30303030303030")  # fixed on purpose


def record() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tpm_process = swtpm.start_swtpm(root / "state")
        try:
            tpm = tpm_process.tpm()
            enrollment = attest.enroll(tpm)
            attest.register(HostName("esx-01"), enrollment, tpm.activate_credential)
            measurer = measure.Measurer(tpm, root / "events.json")
            measurer.reset()
            (root / "agent.deb").write_bytes(b"nestlab-agent 0.1.0 package bytes")
            (root / "agent.yaml").write_text("node: esx-01\n")
            (root / "vmlinuz").write_bytes(b"pod kernel image bytes")
            (root / "initramfs").write_bytes(b"pod initramfs bytes")
            measurer.measure_package("nestlab-agent", "0.1.0", root / "agent.deb")
            measurer.measure_config(root / "agent.yaml")
            measurer.measure_pod_launch(
                measure.PodLaunch("demo/web", root / "vmlinuz", root / "initramfs", "console=hvc0 quiet")
            )
            evidence = attest.collect_evidence(tpm, measurer, NONCE)
        finally:
            tpm_process.stop()
    (FIXTURES / "ek.pub").write_bytes(enrollment.ek_public)
    (FIXTURES / "ak.pub").write_bytes(enrollment.ak_public)
    (FIXTURES / "quote.msg").write_bytes(evidence.message)
    (FIXTURES / "quote.sig").write_bytes(evidence.signature)
    (FIXTURES / "nonce.hex").write_text(NONCE.hex() + "\n")
    (FIXTURES / "events.json").write_text(evidence.event_log)
    pcr_values = {str(index): value.hex() for index, value in sorted(evidence.pcr_values.items())}
    (FIXTURES / "pcrs.json").write_text(json.dumps(pcr_values, indent=1) + "\n")


if __name__ == "__main__":
    record()
