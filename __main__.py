"""The Pulumi program: the lab on libvirt/KVM. Reads the stack config, declares the lab, exports.

Everything else lives in nestlab.substrate.libvirt (see docs/pulumi.md). A bad stack config stops
here with one message per problem, before any resource is declared.
"""

from pathlib import Path

import pulumi

from nestlab.errors import NestlabError
from nestlab.substrate.libvirt import LibvirtLab, outputs, read_settings, stack_config

PROJECT_DIR = Path(__file__).resolve().parent  # relative paths in stack config start here

try:
    settings = read_settings(stack_config(), base_dir=PROJECT_DIR)
except NestlabError as error:
    # RunError ends the program with this message alone, without a Python traceback.
    raise pulumi.RunError(str(error)) from error

console_password = pulumi.Config("nestlab").get_secret("consolePassword")
lab = LibvirtLab("lab", settings, console_password=console_password, repo_root=PROJECT_DIR)

for name, value in outputs(settings).items():
    pulumi.export(name, value)
