"""The per-host service proxy: the NSX distributed load balancer and firewall analogs, on nftables.

``nestlab-proxy`` runs on every host. It watches Services and EndpointSlices and programs the
``ip nestlab`` nftables table so that pods and the host reach ClusterIP:port on any endpoint
(:mod:`~nestlab.proxy.desired` -> :mod:`~nestlab.proxy.rules` -> :mod:`~nestlab.proxy.nft`),
and keeps pods away from the host and the management network except through Services.
"""
