"""``nestlab-trust``: the host's trust commands (measured boot, drills, enrollment, evidence).

Each subcommand is one call into the trust library with this host's TPM (default: the node's
swtpm) and event log (default: /run/nestlab/measurements.json, a tmpfs, empty at every boot). With a
TPM device (``--tpm device:/dev/tpmrm0``, libvirt hosts) the firmware's event log is read from sysfs
too: evidence carries it and measured boot knows what the firmware put into PCR 9 before it ran.
Outputs are made for the programs that call them: the outer ``nestlab up`` (enroll, activate),
``nestlab-measured-boot.service`` (measure-boot) and admins running tamper drills (measure).
Exit codes: 0 done, 1 the TPM or a file failed, 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from nestlab.agent import bootmeasure
from nestlab.errors import NestlabError, UsageError
from nestlab.trust import attest, firmware, pcrs
from nestlab.trust.measure import Measurer
from nestlab.trust.tpm import Tpm

DEFAULT_TCTI = "swtpm:host=127.0.0.1,port=2321"  # the node's nestlab-swtpm.service
DEFAULT_LOG = Path("/run/nestlab/measurements.json")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nestlab-trust", description="host-side measured boot and attestation"
    )
    parser.add_argument("--tpm", default=DEFAULT_TCTI, help="TCTI of the host's TPM")
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG, help="measurement event log")
    commands = parser.add_subparsers(dest="command", required=True)
    boot = commands.add_parser("measure-boot", help="measure boot components (idempotent per boot)")
    boot.add_argument("--package", action="append", default=[], metavar="NAME=PATH", help=".deb or .whl")
    boot.add_argument("--config", action="append", default=[], type=Path, metavar="PATH")
    one = commands.add_parser("measure", help="extend and log one event (tamper drills)")
    one.add_argument("--type", choices=("package", "config"), required=True)
    one.add_argument("--name", help="package name (type package)")
    one.add_argument("--version", help="package version (type package)")
    one.add_argument("file", type=Path)
    commands.add_parser("enroll", help="create or reuse EK and AK; print their public areas as JSON")
    commands.add_parser("activate", help="hex credential blob on stdin -> hex secret on stdout")
    evidence = commands.add_parser("evidence", help="quote + event log for a verifier's nonce, as JSON")
    evidence.add_argument("--nonce", required=True, help="hex")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, tpm: Tpm, stdin: TextIO, stdout: TextIO) -> None:
    measurer = Measurer(tpm, args.log)
    if args.command == "measure-boot":
        tpm.clear_lockout()  # failed hosts reset their TPM uncleanly: see Tpm.clear_lockout
        packages = [bootmeasure.parse_package(text) for text in args.package]
        firmware_log = attest.read_firmware_log(firmware.log_path_for(tpm.tcti))
        for outcome in bootmeasure.measure_boot(
            tpm, measurer, packages, args.config, firmware_log=firmware_log
        ):
            print(outcome.line(), file=stdout)
    elif args.command == "measure":
        if not args.file.is_file():
            raise UsageError(f"{args.file} does not exist")
        if args.type == "config":
            event = measurer.measure_config(args.file)
        else:
            if not args.name or not args.version:
                raise UsageError("measure --type package needs --name and --version")
            event = measurer.measure_package(args.name, args.version, args.file)
        print(
            f"measured {event.type} {event.description} into PCR {event.pcr} (seq {event.seq})", file=stdout
        )
    elif args.command == "enroll":
        enrollment = attest.enroll(tpm)
        # what the registrar records as this host's firmware (PCRs 0-7; all zero without firmware)
        firmware_pcrs = {str(index): value.hex() for index, value in tpm.pcr_read(pcrs.FIRMWARE).items()}
        document = {
            "ekPublic": enrollment.ek_public.hex(),
            "akPublic": enrollment.ak_public.hex(),
            "firmwarePcrs": firmware_pcrs,
        }
        print(json.dumps(document), file=stdout)
    elif args.command == "activate":
        try:
            blob = bytes.fromhex(stdin.read().strip())
        except ValueError:
            raise UsageError("activate reads a hex credential blob on stdin") from None
        print(tpm.activate_credential(blob).hex(), file=stdout)
    elif args.command == "evidence":
        try:
            nonce = bytes.fromhex(args.nonce)
        except ValueError:
            raise UsageError(f"--nonce {args.nonce!r} is not hex") from None
        found = attest.collect_evidence(tpm, measurer, nonce, firmware.log_path_for(tpm.tcti))
        print(json.dumps(attest.evidence_to_json(found)), file=stdout)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args, Tpm(args.tpm), sys.stdin, sys.stdout)
    except UsageError as exc:
        print(f"nestlab-trust: {exc}", file=sys.stderr)
        return 2
    except NestlabError as exc:
        print(f"nestlab-trust: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
