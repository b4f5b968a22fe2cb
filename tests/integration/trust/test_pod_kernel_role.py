"""roles/pod_kernel run for real by ansible-playbook against this machine, sandboxed: /etc, /usr and
/var are overlaid by scratch directories in a private mount namespace (role_sandbox.py), so the real
apt, dpkg, sbverify and python3 do their work and the machine is left unchanged. The repository is
served over HTTP on 127.0.0.1 from the test process."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestlab import paths
from nestlab.provision import podkernel
from nestlab.runtime import proc
from nestlab.trust import keys

from .test_podkernel_package import QuietHandler, stand_in_kernel

pytestmark = [pytest.mark.integration, pytest.mark.root]

SANDBOX = Path(__file__).with_name("role_sandbox.py")
PLAYBOOK = "---\n- name: Pod kernel\n  hosts: all\n  gather_facts: false\n  roles:\n    - role: pod_kernel\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[keys.LabKeys, Path, Path]:
    root = tmp_path_factory.mktemp("role-inputs")
    initramfs = root / "initramfs.cpio"
    initramfs.write_bytes(b"070701 pod initramfs for the role test")
    lab = keys.ensure_lab_keys(root / "keys", "demo")
    public = root / "public"
    keys.export_public(lab, public)
    return lab, initramfs, public


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One server for the module; each test publishes its repository under its own directory."""
    import http.server
    import threading
    from functools import partial

    root = tmp_path_factory.mktemp("www")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def run_role(
    scratch: Path | None, workdir: Path, extravars: dict[str, str], playbook_text: str = PLAYBOOK
) -> proc.Result:
    """ansible-playbook on this machine; in the /etc, /usr, /var sandbox at ``scratch`` unless None."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "site.yml").write_text(playbook_text)
    (workdir / "inventory").write_text(
        "sandbox ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n"
    )
    playbook = Path(sys.executable).with_name("ansible-playbook")
    extra = [arg for name, value in extravars.items() for arg in ("-e", f"{name}={value}")]
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": str(paths.repo_root()),
        "HOME": str(workdir),
        "ANSIBLE_ROLES_PATH": str(paths.repo_root() / "roles"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-local"),
        "ANSIBLE_REMOTE_TMP": str(workdir / "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "LC_ALL": "C.UTF-8",
    }
    argv = [str(playbook), "-i", str(workdir / "inventory"), *extra, str(workdir / "site.yml")]
    if scratch is not None:
        sandbox = ["unshare", "--mount", "--propagation", "private", "--", sys.executable, str(SANDBOX)]
        argv = [*sandbox, str(scratch), "--", *argv]
    return proc.run(argv, timeout=600, check=False, env=env, cwd=workdir)


def recap(result: proc.Result) -> dict[str, int]:
    found = re.search(r"^sandbox\s*:\s*(.*)$", result.stdout, re.MULTILINE)
    assert found, result.stdout[-3000:] + result.stderr[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", found.group(1))}


def role_vars(repo: podkernel.PodKernelRepo, public: Path, url: str) -> dict[str, str]:
    return {
        "pod_kernel_version": repo.version,
        "pod_kernel_apt_key": str(public / "apt-signing.asc"),
        "pod_kernel_db_cert": str(public / "db.crt"),
        "pod_kernel_repo_url": url,
        "nestlab_state_dir": str(public.parent),
    }


def test_role_installs_verifies_keeps_the_package_is_idempotent_and_follows_a_new_build(
    built: tuple[keys.LabKeys, Path, Path], http_root: tuple[Path, str], tmp_path: Path
) -> None:
    lab, initramfs, public = built
    www, base = http_root
    repo = podkernel.build_pod_kernel_repo(lab, stand_in_kernel(), initramfs, www / "good")
    extravars = role_vars(repo, public, f"{base}/good/repo")
    first = run_role(tmp_path / "scratch", tmp_path / "run", extravars)
    assert first.returncode == 0, first.stdout[-4000:]
    assert recap(first)["changed"] > 0
    second = run_role(tmp_path / "scratch", tmp_path / "run", extravars)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second)["changed"] == 0, second.stdout[-4000:]
    upper = tmp_path / "scratch" / "upper"
    installed = upper / podkernel.INSTALL_DIR
    assert (installed / "vmlinux.efi").read_bytes() == repo.image.read_bytes()
    assert (installed / "initramfs.cpio").read_bytes() == initramfs.read_bytes()
    kept = upper / "var/lib/nestlab/boot-components/nestlab-pod-kernel.deb"
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == repo.deb_sha256
    assert (upper / "etc/nestlab/trust/db.crt").read_bytes() == lab.kernel_cert.read_bytes()
    sources = (upper / "etc/apt/sources.list.d/nestlab-pod-kernel.list").read_text()
    assert f"signed-by=/etc/nestlab/trust/apt-signing.asc] {base}/good/repo nestlab main" in sources

    # a new build (another initramfs) replaces the package and the kept .deb
    changed = tmp_path / "initramfs.cpio"
    changed.write_bytes(initramfs.read_bytes() + b" rebuilt")
    newer = podkernel.build_pod_kernel_repo(lab, stand_in_kernel(), changed, www / "good")
    third = run_role(
        tmp_path / "scratch", tmp_path / "run", {**extravars, "pod_kernel_version": newer.version}
    )
    assert third.returncode == 0, third.stdout[-4000:]
    assert recap(third)["changed"] > 0
    assert (installed / "initramfs.cpio").read_bytes() == changed.read_bytes()
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == newer.deb_sha256


def test_role_fails_with_apts_message_on_a_repository_signed_by_another_key(
    built: tuple[keys.LabKeys, Path, Path], http_root: tuple[Path, str], tmp_path: Path
) -> None:
    _lab, initramfs, public = built
    www, base = http_root
    other = keys.ensure_lab_keys(tmp_path / "other-keys", "other")
    rogue = podkernel.build_pod_kernel_repo(other, stand_in_kernel(), initramfs, www / "rogue")
    result = run_role(tmp_path / "scratch", tmp_path / "run", role_vars(rogue, public, f"{base}/rogue/repo"))
    assert result.returncode != 0
    assert recap(result)["failed"] == 1
    assert "NO_PUBKEY" in result.stdout
    assert "is not signed" in result.stdout
    assert not (tmp_path / "scratch" / "upper" / podkernel.INSTALL_DIR).exists()


DEPOT_APT = """---
- name: Depot apt publishing
  hosts: all
  gather_facts: false
  tasks:
    - name: Publish the repository
      ansible.builtin.include_role:
        name: depot
        tasks_from: apt
"""


def test_depot_publishes_exactly_the_current_build_and_checks_it_is_served(
    built: tuple[keys.LabKeys, Path, Path], http_root: tuple[Path, str], tmp_path: Path
) -> None:
    lab, initramfs, _public = built
    www, base = http_root
    depot_root = www / "depot"  # the module's HTTP server plays nginx: /depot/apt/... is the depot's /apt/
    source = tmp_path / "lab" / "apt"
    first = podkernel.build_pod_kernel_repo(lab, stand_in_kernel(), initramfs, source)
    extravars = {
        "depot_root": str(depot_root),
        "depot_apt_source": str(first.repo_dir),
        "depot_http_port": base.rsplit(":", 1)[1] + "/depot",  # the check fetches 127.0.0.1:<port>/apt/...
        "nestlab_state_dir": str(tmp_path / "lab"),
    }
    published = run_role(None, tmp_path / "run", extravars, DEPOT_APT)
    assert published.returncode == 0, published.stdout[-4000:]
    assert recap(published)["changed"] > 0
    files = sorted(p.relative_to(depot_root / "apt") for p in (depot_root / "apt").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(first.repo_dir) for p in first.repo_dir.rglob("*") if p.is_file())
    again = run_role(None, tmp_path / "run", extravars, DEPOT_APT)
    assert recap(again)["changed"] == 0, again.stdout[-4000:]

    changed = tmp_path / "initramfs.cpio"
    changed.write_bytes(initramfs.read_bytes() + b" rebuilt")
    second = podkernel.build_pod_kernel_repo(lab, stand_in_kernel(), changed, source)
    republished = run_role(None, tmp_path / "run", extravars, DEPOT_APT)
    assert republished.returncode == 0, republished.stdout[-4000:]
    debs = [p.name for p in (depot_root / "apt").rglob("*.deb")]
    assert debs == [podkernel.deb_name(second.version)]
    assert (depot_root / "apt/dists/nestlab/InRelease").read_bytes() == (
        second.repo_dir / "dists/nestlab/InRelease"
    ).read_bytes()
