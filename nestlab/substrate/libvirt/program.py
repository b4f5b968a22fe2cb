"""The two things ``__main__.py`` needs from the Pulumi runtime besides resources: config in, exports out.

Pulumi hands a program its stack config in two ways (``PULUMI_CONFIG`` from the CLI's language host,
an in-process map under mocks and the Automation API's inline programs); :func:`stack_config`
merges both so :func:`~nestlab.substrate.libvirt.settings.read_settings` sees every key, including
misspelled ones it must refuse.
"""

from __future__ import annotations

from pulumi.runtime import config as pulumi_config

from nestlab.substrate.libvirt.settings import StackSettings


def stack_config() -> dict[str, object]:
    """Every config key of the running stack (``namespace:key`` -> value)."""
    merged: dict[str, object] = dict(pulumi_config.get_config_env())
    merged.update(pulumi_config.CONFIG.get())
    return merged


def outputs(settings: StackSettings) -> dict[str, object]:
    """The stack outputs: where to reach the lab and the files provisioning leaves behind."""
    plan = settings.plan
    return {
        "vip": str(plan.vip),
        "kubeconfig": str(settings.files.kubeconfig),
        "inventory": str(settings.files.inventory),
        "addresses": {str(node.name): str(node.address) for node in plan.nodes},
        "hypervisors": {str(node.name): settings.uris[node.hypervisor] for node in plan.nodes},
    }
