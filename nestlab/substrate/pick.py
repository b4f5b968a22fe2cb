"""Which substrate a saved lab lives on, as a :class:`~nestlab.substrate.base.Substrate`.

The lab's ``substrate.json`` (written when ``up`` starts) names the substrate; a lab without one is
local, as every lab made before the record existed. The libvirt implementation imports Pulumi, so it
is imported only for a libvirt lab: ``nestlab status`` of a local lab stays quick.
"""

from __future__ import annotations

from collections.abc import Callable

from nestlab.paths import LabFiles
from nestlab.spec import Plan
from nestlab.spec.model import SubstrateType
from nestlab.substrate.base import Substrate, load_record, record_type
from nestlab.substrate.local.substrate import LocalSubstrate


def for_lab(name: str, plan: Callable[[], Plan], files: LabFiles | None = None) -> Substrate:
    """The substrate of lab ``name`` (state in ``files``, default its directory); ``plan`` loads the
    plan saved at its ``up`` when a local call needs it."""
    files = files or LabFiles.named(name)
    record = load_record(files)
    if record is not None and record_type(record) is SubstrateType.LIBVIRT:
        from nestlab.substrate.libvirt.substrate import (  # noqa: PLC0415 - imports Pulumi
            LibvirtRecord,
            LibvirtSubstrate,
        )

        return LibvirtSubstrate(name, files, LibvirtRecord.from_dict(record))
    return LocalSubstrate(name, plan, lab_root=files.root)
