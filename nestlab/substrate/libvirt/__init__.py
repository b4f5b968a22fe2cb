"""The libvirt substrate: the lab as libvirt domains, declared by a Pulumi program.

``__main__.py`` at the repository root is the program; it reads the stack config into
:class:`StackSettings` and declares one :class:`LibvirtLab`. ``nestlab up --substrate libvirt``
runs the same program through :mod:`nestlab.substrate.libvirt.automation`.
"""

from nestlab.substrate.libvirt.lab import LibvirtLab
from nestlab.substrate.libvirt.program import outputs, stack_config
from nestlab.substrate.libvirt.settings import StackConfigError, StackSettings, read_settings

__all__ = ["LibvirtLab", "StackConfigError", "StackSettings", "outputs", "read_settings", "stack_config"]
