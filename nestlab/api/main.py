"""``nestlab-apiserver``: the command the Ansible role runs on each control-plane node.

Flags follow kube-apiserver's names where one exists, so an administrator who knows one knows
the other (``--etcd-servers``, ``--tls-cert-file``, ``--client-ca-file``, ``--token-auth-file``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from nestlab.api import auditpolicy, encryption, registrytoken, satokens, store
from nestlab.api.etcd import TLSFiles
from nestlab.api.server import ServerConfig, serve
from nestlab.api.serviceips import DEFAULT_RANGE, RangeError, ServiceRange
from nestlab.api.tolerations import UPSTREAM_DEFAULT_SECONDS
from nestlab.errors import NestlabError, UsageError


def parse_args(argv: Sequence[str]) -> ServerConfig:
    """The server configuration from command-line flags; UsageError on inconsistent flags."""
    return parse(argv)[0]


def parse(argv: Sequence[str]) -> tuple[ServerConfig, encryption.Encryption]:
    """The server configuration and the encryption at rest from command-line flags (UsageError on
    inconsistent flags or an encryption provider config that cannot be used)."""
    parser = argparse.ArgumentParser(
        prog="nestlab-apiserver", description="Kubernetes-compatible API server on etcd"
    )
    parser.add_argument("--etcd-servers", required=True, help="comma-separated etcd client URLs")
    parser.add_argument("--etcd-cafile", type=Path, help="CA that signed the etcd server certificates")
    parser.add_argument("--etcd-certfile", type=Path, help="client certificate for etcd")
    parser.add_argument("--etcd-keyfile", type=Path, help="key of --etcd-certfile")
    parser.add_argument("--bind", "--bind-address", default="0.0.0.0", help="address to listen on")  # noqa: S104
    parser.add_argument("--port", "--secure-port", type=int, default=6443)
    parser.add_argument(
        "--tls-cert-file", type=Path, help="serving certificate (omit for plain HTTP, tests only)"
    )
    parser.add_argument("--tls-private-key-file", type=Path)
    parser.add_argument("--client-ca-file", type=Path, help="CA of client certificates (CN=user, O=groups)")
    parser.add_argument("--token-auth-file", type=Path, help='static tokens: token,user,uid,"group1,group2"')
    parser.add_argument(
        "--anonymous-admin", action="store_true", help="unauthenticated callers are admins (tests only)"
    )
    parser.add_argument(
        "--shutdown-delay-duration",
        type=float,
        default=1.0,
        help="seconds to keep serving (with /readyz failing) after SIGTERM, so load balancers drain",
    )
    for which in ("not-ready", "unreachable"):
        parser.add_argument(
            f"--default-{which}-toleration-seconds",
            type=int,
            default=UPSTREAM_DEFAULT_SECONDS,
            help=f"tolerationSeconds of the {which}:NoExecute toleration added to every new pod "
            "that does not tolerate that taint already (DefaultTolerationSeconds admission)",
        )
    parser.add_argument(
        "--service-cluster-ip-range",
        default=DEFAULT_RANGE,
        help="IPv4 CIDR Service ClusterIPs are allocated from (the lab spec's networks.services); "
        "the kubernetes Service gets its first address, kube-dns its tenth",
    )
    parser.add_argument(
        "--advertise-address",
        default="",
        help="the IP clients reach the API at (the VIP): the endpoint of the kubernetes Service",
    )
    parser.add_argument(
        "--encryption-provider-config",
        type=Path,
        help="an apiserver.config.k8s.io/v1 EncryptionConfiguration: the resources (secrets) encrypted "
        "at rest in etcd and their keys (providers aesgcm, aescbc, identity)",
    )
    parser.add_argument(
        "--registry-token-signing-key-file",
        type=Path,
        help="EC P-256 key the depot registry's token service signs with (serves /nestlab/v1/registry/token)",
    )
    parser.add_argument("--registry-token-issuer", default=registrytoken.DEFAULT_ISSUER)
    parser.add_argument("--registry-token-service", default=registrytoken.DEFAULT_SERVICE)
    parser.add_argument(
        "--service-account-signing-key-file",
        type=Path,
        help="EC P-256 key (PEM) bound service-account tokens are signed and verified with; "
        "without it no TokenRequest, no ServiceAccount admission",
    )
    parser.add_argument(
        "--service-account-issuer",
        default=satokens.ISSUER,
        help="the iss claim of service-account tokens (and the API audience)",
    )
    _audit_flags(parser)
    parser.add_argument(
        "--identity-signing-key",
        type=Path,
        help="EC P-256 key (PEM) lab users' login tokens are signed and verified with "
        "(serves /nestlab/v1/login); without it users can be managed but not log in",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(list(argv))
    if (args.tls_cert_file is None) != (args.tls_private_key_file is None):
        raise UsageError("--tls-cert-file and --tls-private-key-file go together")
    if args.client_ca_file is not None and args.tls_cert_file is None:
        raise UsageError("--client-ca-file needs TLS: give --tls-cert-file and --tls-private-key-file")
    for flag, seconds in (
        ("--default-not-ready-toleration-seconds", args.default_not_ready_toleration_seconds),
        ("--default-unreachable-toleration-seconds", args.default_unreachable_toleration_seconds),
    ):
        if seconds < 0:
            raise UsageError(f"{flag} must be 0 or more seconds, not {seconds}")
    try:
        ServiceRange.parse(args.service_cluster_ip_range)
    except RangeError as exc:
        raise UsageError(f"--service-cluster-ip-range: {exc}") from exc
    if args.advertise_address:
        try:
            ipaddress.IPv4Address(args.advertise_address)
        except ValueError as exc:
            raise UsageError(
                f"--advertise-address must be an IPv4 address, not {args.advertise_address!r}"
            ) from exc
    at_rest = encryption.IDENTITY
    if args.encryption_provider_config is not None:
        # Loaded before serving: a missing file or a bad key stops the server with a message naming
        # the file, instead of a server that cannot read (or silently does not encrypt) Secrets.
        at_rest = encryption.load(args.encryption_provider_config)
    etcd_tls = None
    if args.etcd_cafile is not None:
        etcd_tls = TLSFiles(args.etcd_cafile, args.etcd_certfile, args.etcd_keyfile)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = ServerConfig(
        etcd_servers=tuple(s.strip() for s in args.etcd_servers.split(",") if s.strip()),
        bind=args.bind,
        port=args.port,
        tls_cert=args.tls_cert_file,
        tls_key=args.tls_private_key_file,
        client_ca=args.client_ca_file,
        tokens_file=args.token_auth_file,
        etcd_tls=etcd_tls,
        anonymous_admin=args.anonymous_admin,
        drain_seconds=args.shutdown_delay_duration,
        default_not_ready_toleration_seconds=args.default_not_ready_toleration_seconds,
        default_unreachable_toleration_seconds=args.default_unreachable_toleration_seconds,
        service_cluster_ip_range=args.service_cluster_ip_range,
        advertise_address=args.advertise_address,
        identity_signing_key=args.identity_signing_key,
        audit_policy_file=_checked_audit(args),
        audit_log_path=args.audit_log_path,
        audit_log_maxsize_mb=args.audit_log_maxsize,
        audit_log_maxbackup=args.audit_log_maxbackup,
        service_account_key=args.service_account_signing_key_file,
        service_account_issuer=args.service_account_issuer,
        registry_tokens=None
        if args.registry_token_signing_key_file is None
        else registrytoken.TokenConfig(
            args.registry_token_signing_key_file, args.registry_token_issuer, args.registry_token_service
        ),
    )
    return config, at_rest


def _audit_flags(parser: argparse.ArgumentParser) -> None:
    """kube-apiserver's audit log flags (the log backend; no webhook backend)."""
    parser.add_argument(
        "--audit-policy-file",
        type=Path,
        help="audit.k8s.io/v1 Policy: which requests the audit log records and at which level "
        "(without it nothing is logged, as upstream)",
    )
    parser.add_argument("--audit-log-path", default="", help="the audit log file (- for standard output)")
    parser.add_argument(
        "--audit-log-maxsize",
        type=float,
        default=0,
        help="megabytes the audit log may reach before it is rotated (0: 100; fractions allowed)",
    )
    parser.add_argument("--audit-log-maxbackup", type=int, default=0, help="rotated audit logs kept (0: all)")


def _checked_audit(args: argparse.Namespace) -> Path | None:
    """The audit policy file; UsageError for negative sizes or a policy that cannot be used (naming
    its file and line), before the server starts."""
    if args.audit_log_maxsize < 0 or args.audit_log_maxbackup < 0:
        raise UsageError("--audit-log-maxsize and --audit-log-maxbackup must be 0 or more")
    if args.audit_policy_file is not None:
        auditpolicy.load(args.audit_policy_file)
    path: Path | None = args.audit_policy_file
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    try:
        config, at_rest = parse(sys.argv[1:] if argv is None else argv)
        if at_rest.rules:
            store.use_transformer(at_rest)
            logging.getLogger("nestlab.api").info(
                "encryption at rest (%s): %s", at_rest.source, at_rest.describe()
            )
        asyncio.run(serve(config))
    except NestlabError as exc:
        print(f"nestlab-apiserver: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
