"""Where nodes come from: the local substrate (systemd-nspawn) and libvirt (Pulumi components).

Both deliver the same thing to the layers above: nodes on the lab management network, reachable
over SSH, running systemd, each with its own TPM.
"""
