"""``nestlab-attest [HOST] [--json]``: attest hosts now, on a control-plane node, and say how it went.

The one-shot counterpart of the controller's periodic rounds (the outer ``nestlab attest`` runs it
over SSH on a cp node). It records verdicts exactly as the controller does, prints a report per
host, and exits 0 only if every attested host passed (1 otherwise, 2 for usage errors), so scripts
and the exercises can branch on it. Its settings come from flags or from a config file of
``flag = value`` lines (``/etc/nestlab/attestation/verifier.conf``, written by roles/control_plane),
so on a cp node it needs no flags at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nestlab.api.client import ApiClient, Credentials
from nestlab.controller.verifier import Outcome, Verifier, VerifierSettings, agent_tls
from nestlab.errors import EXIT_FAILURE, NestlabError, UsageError

DEFAULT_CONFIG: Final = Path("/etc/nestlab/attestation/verifier.conf")
CONFIG_ENV: Final = "NESTLAB_ATTEST_CONFIG"
_KEYS: Final = (
    "server",
    "certificate-authority",
    "client-certificate",
    "client-key",
    "token-file",
    "attestation-policy",
    "attestation-ca",
)


@dataclass(frozen=True)
class AttestOptions:
    """What one ``nestlab-attest`` run does."""

    credentials: Credentials
    settings: VerifierSettings
    host: str | None
    as_json: bool


def read_config(path: Path) -> dict[str, str]:
    """``flag = value`` lines ('#' comments); UsageError names a bad line or an unknown key."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the config file {path}: {exc.strerror}") from exc
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, equals, value = (part.strip() for part in stripped.partition("="))
        if not equals or key not in _KEYS:
            raise UsageError(f"{path}:{number}: expected 'key = value' with key one of {', '.join(_KEYS)}")
        values[key] = value
    return values


def parse_args(argv: Sequence[str], environ: dict[str, str] | None = None) -> AttestOptions:
    """Flags override the config file; UsageError when something needed is missing."""
    parser = argparse.ArgumentParser(prog="nestlab-attest", description="attest lab hosts now")
    parser.add_argument("host", nargs="?", help="attest only this Node (default: every Node)")
    parser.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    parser.add_argument("--config", type=Path, help=f"settings file (default {DEFAULT_CONFIG} if present)")
    for key in _KEYS:
        parser.add_argument(f"--{key}")
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse already printed why
        raise UsageError("invalid command line (see above)") from exc
    env = os.environ if environ is None else environ
    config_path = args.config or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    if config_path is None and DEFAULT_CONFIG.exists():
        config_path = DEFAULT_CONFIG
    values = read_config(config_path) if config_path is not None else {}
    for key in _KEYS:
        flag = getattr(args, key.replace("-", "_"))
        if flag is not None:
            values[key] = flag
    missing = [f"--{k}" for k in ("server", "attestation-policy", "attestation-ca") if not values.get(k)]
    if missing:
        raise UsageError(f"missing {', '.join(missing)} (give the flags or a config file with --config)")
    if ("client-certificate" in values) != ("client-key" in values):
        raise UsageError("client-certificate and client-key go together")
    token = None
    if values.get("token-file"):
        try:
            token = Path(values["token-file"]).read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read token-file {values['token-file']}: {exc.strerror}") from exc
    if token is None and "client-certificate" not in values:
        raise UsageError("give a token-file or client-certificate/client-key: the API server requires a user")

    def path(key: str) -> Path | None:
        return Path(values[key]) if values.get(key) else None

    credentials = Credentials(
        values["server"], path("certificate-authority"), token, path("client-certificate"), path("client-key")
    )
    try:
        tls = agent_tls(credentials.ca, credentials.cert, credentials.key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"cannot load the TLS files (certificate-authority {credentials.ca}, client-certificate "
            f"{credentials.cert}, client-key {credentials.key}): {exc}"
        ) from exc
    settings = VerifierSettings(Path(values["attestation-policy"]), Path(values["attestation-ca"]), tls)
    return AttestOptions(credentials, settings, args.host, args.json)


def report(outcomes: Sequence[Outcome]) -> str:
    """The human report: one block per host."""
    blocks = []
    for outcome in outcomes:
        verdict = outcome.verdict
        lines = [
            f"{outcome.node}: {'PASSED' if verdict.passed else 'FAILED'}",
            f"  time:           {verdict.time}",
            f"  AK certificate: {outcome.ak_certificate}",
            f"  events:         {len(verdict.events)}"
            f" ({sum(1 for e in verdict.events if not e.allowed)} refused)",
            f"  policy digest:  {verdict.policy_digest or '(none)'}",
        ]
        lines += [f"  PCR {index:>2}:         {value}" for index, value in sorted(verdict.pcrs.items())]
        lines += [f"  reason:         {reason}" for reason in verdict.reasons]
        if outcome.recorded is not None:
            lines.append(f"  NOT RECORDED on the Node: {outcome.recorded}")
        blocks.append("\n".join(lines))
    passed = sum(1 for o in outcomes if o.verdict.passed)
    blocks.append(f"{passed} of {len(outcomes)} host(s) passed attestation")
    return "\n\n".join(blocks) + "\n"


async def attest_now(options: AttestOptions) -> list[Outcome]:
    """Attest (one or every Node) and record the verdicts; UsageError for an unknown host."""
    client = ApiClient(options.credentials)
    try:
        verifier = Verifier(client, options.settings)
        outcomes = await verifier.attest_nodes([options.host] if options.host else ())
    finally:
        await client.close()
    if options.host and not outcomes:
        raise UsageError(f"no Node named {options.host}: `kubectl get nodes` lists the hosts")
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script: 0 iff every attested host passed, 1 otherwise, 2 usage."""
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv)
        outcomes = asyncio.run(attest_now(options))
    except NestlabError as exc:
        print(f"nestlab-attest: {exc}", file=sys.stderr)
        return exc.exit_code
    if options.as_json:
        print(json.dumps([outcome.to_json() for outcome in outcomes], indent=2))
    else:
        print(report(outcomes), end="")
    if not outcomes:
        print("nestlab-attest: there are no Nodes to attest", file=sys.stderr)
        return EXIT_FAILURE
    return 0 if all(outcome.verdict.passed for outcome in outcomes) else EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
