"""``nestlab verify``: run the testinfra suite in tests/infra against a lab, in one pytest run.

Each module of tests/infra picks its nodes by role from the lab's plan.json (see tests/infra/lab.py);
this module only assembles the pytest command (paramiko backend, the lab's ssh_config) and runs it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nestlab import paths
from nestlab.errors import NestlabError
from nestlab.paths import LabFiles
from nestlab.runtime import proc

VERIFY_TIMEOUT_S = 1800.0  # every check on nine nodes over SSH; normally well under a minute


class VerifyError(NestlabError):
    """Some checks failed; pytest's report above says which, on which node."""


def verify_argv(files: LabFiles, extra: list[str]) -> list[str]:
    """The pytest command line for the lab's checks."""
    suite = paths.repo_root() / "tests" / "infra"
    return [
        sys.executable, "-m", "pytest", str(suite),
        "--rootdir", str(suite),
        "-c", str(suite / "pytest.ini"),
        "--ssh-config", str(files.ssh_config),
        "--junitxml", str(files.logs / "verify.xml"),
        *extra,
    ]  # fmt: skip


def verify(files: LabFiles, extra: list[str] | None = None) -> Path:
    """Run every check; returns the JUnit report path, raises VerifyError when any check fails."""
    if not files.plan.exists():
        raise NestlabError(f"no lab at {files.root}: run `nestlab up` first")
    files.logs.mkdir(parents=True, exist_ok=True)
    result = proc.run(
        verify_argv(files, extra or []),
        timeout=VERIFY_TIMEOUT_S,
        check=False,
        capture=False,
        env={**os.environ, "NESTLAB_LAB_DIR": str(files.root)},
    )
    if result.returncode != 0:
        raise VerifyError(
            f"verify: checks failed (exit {result.returncode}); report: {files.logs / 'verify.xml'}"
        )
    return files.logs / "verify.xml"
