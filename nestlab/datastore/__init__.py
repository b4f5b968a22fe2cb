"""The lab datastore (the CNS + datastore of vSphere with Kubernetes): block volumes served over NBD.

``nestlab-datastore`` runs on the depot node. It keeps each volume as a sparse raw file formatted
ext4 at creation, and exports an attached volume to exactly one node through its own
``qemu-storage-daemon`` (NBD, one client at a time, a secret export name). nestlab-controller's
provisioner and attacher drive it through :mod:`nestlab.datastore.client`; nodes only ever see
the NBD URL the attacher writes into a VolumeAttachment's status.
"""
