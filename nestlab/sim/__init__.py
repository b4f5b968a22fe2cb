"""Simulated hosts: a control-plane scale test, never a real host (kubemark's hollow nodes).

A lab on one machine boots a handful of pod microVMs at most; the control plane (API server, etcd,
scheduler) is meant for more. :mod:`nestlab.sim.hollow` builds the objects a simulated host shows
(a Node labelled and tainted as simulated, pod statuses that say no VM runs) and
:mod:`nestlab.sim.hosts` runs N of them against a real API server: each registers its Node,
renews its Lease, watches the pods bound to it and reports them Running without booting anything.
"""
