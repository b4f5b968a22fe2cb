"""The local substrate: lab nodes as systemd-nspawn machines on a lab bridge on this machine.

Each node boots the shared node image (debootstrap, cached by recipe digest) through its own
overlay, with its own hostname, address, SSH host key and TPM (swtpm inside the node).
"""
