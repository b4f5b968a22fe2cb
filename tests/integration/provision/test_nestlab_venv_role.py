"""roles/nestlab_venv, the venv install the node roles share, run by REAL ansible-playbook on this machine.

A local HTTP server plays the depot (``/wheels/`` with pip's wheel and a small wheel named
nestlab); the role makes a venv without pip, installs from the depot only, records the wheelhouse
digest and does nothing on a second run with the same digest. With ``nestlab_venv_keep_wheel_dir``
(roles/esx_host) the installed wheel is kept as ``nestlab.whl`` and a missing one forces a reinstall.
"""

from __future__ import annotations

import base64
import ensurepip
import functools
import hashlib
import json
import os
import shutil
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nestlab.runtime import proc

pytestmark = pytest.mark.integration
ROLES = Path(__file__).resolve().parents[3] / "roles"
NESTLAB_WHEEL = "nestlab-0.0.0-py3-none-any.whl"
PLAYBOOK = """\
- name: Install nestlab into a venv as the node roles do
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Install
      ansible.builtin.import_role:
        name: nestlab_venv
    - name: Say whether it installed
      ansible.builtin.copy:
        dest: "{report}"
        content: "{{{{ nestlab_venv_install is changed }}}}"
        mode: "0644"
"""


def _pip_wheel() -> Path:
    bundled = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
    if not bundled:
        pytest.skip("this interpreter bundles no pip wheel to serve as the depot's")
    return bundled[-1]


def _fake_nestlab_wheel(path: Path, marker: str) -> None:
    """A pure wheel named nestlab whose module ``nestlab_venv_probe`` says ``marker``."""
    files = {
        "nestlab_venv_probe.py": f"MARKER = {marker!r}\n".encode(),
        "nestlab-0.0.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: nestlab\nVersion: 0.0.0\n",
        "nestlab-0.0.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("nestlab-0.0.0.dist-info/RECORD,,")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("nestlab-0.0.0.dist-info/RECORD", "\n".join(record) + "\n")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """The depot's access log would only clutter the test's output."""


@pytest.fixture
def depot(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The depot's URL and the wheelhouse it serves: the outer machine's ``<state>/wheelhouse``."""
    root = tmp_path / "depot"
    root.mkdir()
    wheels = tmp_path / "state" / "wheelhouse"
    wheels.mkdir(parents=True)
    (root / "wheels").symlink_to(wheels)
    pip = _pip_wheel()
    shutil.copy(pip, wheels / pip.name)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fetched = Path("/var/tmp") / pip.name  # where the role puts pip's wheel
    existed = fetched.exists()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", wheels
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        if not existed:
            fetched.unlink(missing_ok=True)


def _run(tmp_path: Path, variables: dict[str, object]) -> bool:
    """Run the role once; whether it installed nestlab (``nestlab_venv_install is changed``)."""
    report = tmp_path / "installed.txt"
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.format(report=report))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook),
            "-e", json.dumps({**variables, "ansible_python_interpreter": sys.executable})]  # fmt: skip
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
    }
    proc.run(argv, timeout=300, env=env)
    return report.read_text() == "True"


def _variables(url: str, wheels: Path, venv: Path, digest: str, **more: object) -> dict[str, object]:
    return {
        "nestlab_state_dir": str(wheels.parent),  # the role reads pip's wheel name from <state>/wheelhouse
        "nestlab_venv_path": str(venv),
        "nestlab_venv_depot_url": url,
        "nestlab_venv_wheelhouse": {"nestlabWheel": NESTLAB_WHEEL, "digest": digest},
        "nestlab_venv_requirement": f"nestlab @ {url}/wheels/{NESTLAB_WHEEL}",
        **more,
    }


def _probe(venv: Path) -> str:
    probe = "import nestlab_venv_probe as p; print(p.MARKER)"
    result = proc.run([str(venv / "bin" / "python"), "-c", probe], timeout=60)
    return result.stdout.strip()


def test_installs_from_the_depot_once_per_wheelhouse_digest(tmp_path: Path, depot: tuple[str, Path]) -> None:
    url, wheels = depot
    venv = tmp_path / "venv"
    _fake_nestlab_wheel(wheels / NESTLAB_WHEEL, "first")

    assert _run(tmp_path, _variables(url, wheels, venv, "digest-1")), "a new venv gets nestlab"
    assert _probe(venv) == "first"
    assert (venv / ".wheelhouse-digest").read_text() == "digest-1\n"
    assert (venv / "bin" / "pip").exists(), "pip installed itself from its wheel"

    _fake_nestlab_wheel(wheels / NESTLAB_WHEEL, "second")
    assert not _run(tmp_path, _variables(url, wheels, venv, "digest-1")), "same digest: nothing installed"
    assert _probe(venv) == "first"

    assert _run(tmp_path, _variables(url, wheels, venv, "digest-2")), "a new digest reinstalls"
    assert _probe(venv) == "second"
    assert (venv / ".wheelhouse-digest").read_text() == "digest-2\n"


def test_keeps_the_installed_wheel_as_a_boot_component(tmp_path: Path, depot: tuple[str, Path]) -> None:
    url, wheels = depot
    venv = tmp_path / "venv"
    boot = tmp_path / "boot-components"
    _fake_nestlab_wheel(wheels / NESTLAB_WHEEL, "kept")
    variables = _variables(
        url, wheels, venv, "digest-1",
        nestlab_venv_keep_wheel_dir=str(boot),
        nestlab_venv_requirement=str(boot / "wheel" / NESTLAB_WHEEL),
    )  # fmt: skip

    assert _run(tmp_path, variables)
    assert _probe(venv) == "kept"
    kept = boot / "nestlab.whl"
    assert kept.stat().st_ino == (boot / "wheel" / NESTLAB_WHEEL).stat().st_ino, "the very file pip installed"
    assert kept.read_bytes() == (wheels / NESTLAB_WHEEL).read_bytes()

    assert not _run(tmp_path, variables), "same digest, wheel kept: nothing installed"
    kept.unlink()
    assert _run(tmp_path, variables), "a missing boot component forces the install"
    assert kept.exists()
