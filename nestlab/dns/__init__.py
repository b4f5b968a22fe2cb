"""Cluster DNS: ``nestlab-dns`` feeds a Debian unbound on each control-plane node from the API.

Upstream clusters run CoreDNS, which reads Services and EndpointSlices and answers from memory.
Debian packages no CoreDNS, so the lab splits the job in two: a real DNS server (unbound, static
local zones) answers, and this package turns Services and EndpointSlices into the records of the
Kubernetes DNS-Based Service Discovery specification and loads them into unbound through
``unbound-control``, incrementally. It also keeps the ``kube-system/kube-dns`` Endpoints equal to
the control-plane nodes whose feeder is alive, so a dead DNS node leaves the Service in seconds.

Layers: :mod:`~nestlab.dns.records` (pure: objects -> records, record-set diffs),
:mod:`~nestlab.dns.zone` (pure: the whole zone per Service -> what to tell unbound),
:mod:`~nestlab.dns.unbound` (the one place running ``unbound-control``; config rendering),
:mod:`~nestlab.dns.presence` (Leases -> kube-dns Endpoints), :mod:`~nestlab.dns.feeder` and
:mod:`~nestlab.dns.main` (the daemon); :mod:`~nestlab.dns.local` starts a private unbound on
loopback for the integration tests and ``bench/dns_lookup.py``.
"""
