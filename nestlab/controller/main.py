"""``nestlab-controller``: the leader-elected scheduler, node lifecycle and workload controllers.

Run one per control-plane node; the Lease makes exactly one of them act. Flags mirror
kube-scheduler's where they exist (``--leader-elect-lease-duration``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from nestlab.api.client import ApiClient, Credentials
from nestlab.controller import attacher, loadbalancer, provisioner, serviceaccounts
from nestlab.controller.clusterroleaggregation import ClusterRoleAggregationController
from nestlab.controller.cronjob import CronJobController
from nestlab.controller.deployment import DeploymentController
from nestlab.controller.disruption import DisruptionController
from nestlab.controller.endpoints import EndpointsController
from nestlab.controller.endpointslicemirroring import EndpointSliceMirroringController
from nestlab.controller.endpointslices import EndpointSliceController
from nestlab.controller.gc import GarbageCollector
from nestlab.controller.informer import ControllerFactory
from nestlab.controller.job import JobController
from nestlab.controller.leader import LeaderElector, LeaseConfig
from nestlab.controller.manager import PassFactory, run_while_leading
from nestlab.controller.nodelifecycle import GRACE, NodeLifecycle
from nestlab.controller.podgc import PodGC
from nestlab.controller.pvcprotection import PVCProtectionController
from nestlab.controller.replicaset import ReplicaSetController, ReplicationManager
from nestlab.controller.scheduler import Scheduler
from nestlab.controller.statefulset import StatefulSetController
from nestlab.controller.taintmanager import TaintManager
from nestlab.controller.verifier import PeriodicAttestation, Verifier, VerifierSettings, agent_tls
from nestlab.controller.views import Cached
from nestlab.datastore.client import DatastoreClient, DatastoreConfig
from nestlab.errors import NestlabError, UsageError

# The controllers on shared informers and work queues, started while leading (manager.Term).
# One line each: add yours here.
# (The LoadBalancer controller needs --ingress-cidr, the provisioner and attacher the datastore of
# --datastore-url: run() appends them.)
CONTROLLERS: list[ControllerFactory] = [
    ReplicaSetController,
    ReplicationManager,
    DeploymentController,
    GarbageCollector,
    StatefulSetController,
    JobController,
    CronJobController,
    DisruptionController,
    EndpointsController,
    EndpointSliceController,
    EndpointSliceMirroringController,
    ClusterRoleAggregationController,
    PVCProtectionController,
]


@dataclass(frozen=True)
class Options:
    """What ``nestlab-controller`` is told on its command line."""

    credentials: Credentials
    lease: LeaseConfig
    interval: float
    """Seconds between passes."""
    node_grace: int
    """Seconds without a heartbeat before a node is marked Unknown."""
    attestation_policy: Path | None = None
    """The attestation policy file; with ``attestation_ca`` it turns periodic attestation on."""
    attestation_ca: Path | None = None
    """The attestation CA certificate that signs hosts' AK certificates."""
    attest_interval: float = 30.0
    """Seconds between attestation rounds."""
    ingress_cidr: IPv4Network | None = None
    """The LoadBalancer address pool (the lab spec's networks.ingress); None: LoadBalancers stay pending."""
    datastore: DatastoreConfig | None = None
    """The lab datastore (``--datastore-url``, with the API's CA and client certificate); None: claims of
    the datastore's classes stay Pending with an Event saying why."""


def parse_args(argv: Sequence[str]) -> Options:
    """The controller's options from the command line; UsageError on inconsistent flags."""
    parser = argparse.ArgumentParser(prog="nestlab-controller", description="leader-elected pod scheduler")
    parser.add_argument("--server", required=True, help="API server URL, e.g. https://198.18.0.10:6443")
    parser.add_argument("--certificate-authority", type=Path, help="CA of the API server certificate")
    parser.add_argument("--token-file", type=Path, help="file holding a bearer token")
    parser.add_argument("--client-certificate", type=Path)
    parser.add_argument("--client-key", type=Path)
    parser.add_argument(
        "--identity", default=f"{socket.gethostname()}_{os.getpid()}", help="name in the Lease"
    )
    parser.add_argument("--leader-elect-lease-duration", type=int, default=15, help="seconds")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between scheduling passes")
    parser.add_argument(
        "--node-monitor-grace-period",
        type=int,
        default=GRACE,
        help="seconds without a node heartbeat before the node is Unknown and tainted unreachable",
    )
    parser.add_argument(
        "--attestation-policy", type=Path, help="attestation policy file; with --attestation-ca: attest hosts"
    )
    parser.add_argument(
        "--attestation-ca", type=Path, help="attestation CA certificate (signs AK certificates)"
    )
    parser.add_argument(
        "--attest-interval", type=float, default=30.0, help="seconds between attestation rounds"
    )
    parser.add_argument("--ingress-cidr", help="LoadBalancer address pool (the lab spec's networks.ingress)")
    parser.add_argument(
        "--datastore-url",
        help="the lab datastore, e.g. https://198.18.0.5:9443 (mutual TLS with --certificate-authority "
        "and --client-certificate/--client-key)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(list(argv))
    token = None
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read --token-file {args.token_file}: {exc.strerror}") from exc
    if (args.client_certificate is None) != (args.client_key is None):
        raise UsageError("--client-certificate and --client-key go together")
    if token is None and args.client_certificate is None:
        raise UsageError(
            "give --token-file or --client-certificate/--client-key: the API server requires a user"
        )
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    credentials = Credentials(
        args.server, args.certificate_authority, token, args.client_certificate, args.client_key
    )
    lease = LeaseConfig(args.identity, duration=args.leader_elect_lease_duration)
    if (args.attestation_policy is None) != (args.attestation_ca is None):
        raise UsageError("--attestation-policy and --attestation-ca go together (attestation needs both)")
    if args.attest_interval <= 0:
        raise UsageError(f"--attest-interval must be positive seconds, not {args.attest_interval:g}")
    try:
        ingress = loadbalancer.parse_pool(args.ingress_cidr) if args.ingress_cidr else None
    except ValueError as exc:
        why = f"{exc} (give a network such as 198.18.8.0/24)"
        raise UsageError(f"--ingress-cidr {args.ingress_cidr}: {why}") from exc
    datastore = None
    if args.datastore_url:
        if not args.datastore_url.startswith("https://") or args.client_certificate is None:
            raise UsageError(
                f"--datastore-url {args.datastore_url}: give an https:// URL and --client-certificate/"
                "--client-key (the datastore serves lab-CA clients only)"
            )
        datastore = DatastoreConfig(
            args.datastore_url, args.certificate_authority, args.client_certificate, args.client_key
        )
    return Options(
        credentials,
        lease,
        args.interval,
        args.node_monitor_grace_period,
        args.attestation_policy,
        args.attestation_ca,
        args.attest_interval,
        ingress,
        datastore,
    )


async def run(options: Options) -> None:
    """Run the node lifecycle and scheduler passes while leading, until SIGTERM/SIGINT."""
    client = ApiClient(options.credentials)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # A failed host: taint it and mark its pods (lifecycle), evict them (taint manager), release
    # the ones its agent can never confirm (PodGC); then the scheduler places the replacements.
    # Each term builds them on its informers: they read pods and nodes from the caches.
    grace = options.node_grace
    passes: list[PassFactory] = [
        lambda c, informers: NodeLifecycle(c, grace, view=Cached(informers)).pass_once,
        lambda c, informers: TaintManager(c, view=Cached(informers)).pass_once,
        lambda c, informers: PodGC(c, view=Cached(informers)).pass_once,
        lambda c, informers: Scheduler(c, view=Cached(informers)).pass_once,
    ]
    datastore = None if options.datastore is None else DatastoreClient(options.datastore)
    attesting = None
    if options.attestation_policy is not None and options.attestation_ca is not None:
        creds = options.credentials
        settings = VerifierSettings(
            options.attestation_policy, options.attestation_ca, agent_tls(creds.ca, creds.cert, creds.key)
        )
        attesting = PeriodicAttestation(Verifier(client, settings), options.attest_interval)
        attest = attesting.pass_once
        passes.append(lambda _c, _informers: attest)
    try:
        elector = LeaderElector(client, options.lease)
        controllers = [
            *CONTROLLERS,
            loadbalancer.factory(options.ingress_cidr),  # needs --ingress-cidr
            provisioner.factory(datastore),  # these two need --datastore-url
            attacher.factory(datastore),
            serviceaccounts.factory(options.credentials.ca),  # default SA + kube-root-ca.crt
        ]
        await run_while_leading(elector, passes, options.interval, stop, controllers)
    finally:
        if attesting is not None:
            await attesting.close()
        if datastore is not None:
            await datastore.close()
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    try:
        asyncio.run(run(parse_args(sys.argv[1:] if argv is None else argv)))
    except NestlabError as exc:
        print(f"nestlab-controller: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
