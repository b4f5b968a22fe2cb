"""Container logs also in the kubelet's layout: /var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log."""

from __future__ import annotations

from pathlib import Path

from nestlab.agent import logstore
from nestlab.agent.logstore import Collector, ContainerView, Mirror, PodLogs

T0 = 1_700_000_000_000_000_000


def running(restarts: int = 0, last: bool = False) -> ContainerView:
    return ContainerView("web", "running", "", restarts, last)


def setup(tmp_path: Path) -> tuple[Path, Mirror, dict[str, ContainerView]]:
    pod_dir = tmp_path / "state" / "pods" / "1234-uid"
    (pod_dir / "vm").mkdir(parents=True)
    mirror = Mirror(logstore.ensure_log_pods_dir(tmp_path / "var-log-pods"), tmp_path / "state" / "pods")
    return pod_dir, mirror, {"web": running()}


def test_lines_are_written_in_both_layouts(tmp_path: Path) -> None:
    pod_dir, mirror, views = setup(tmp_path)
    (pod_dir / "vm" / "console.log").write_text("[web] hello\n")
    Collector(lambda: [PodLogs("shop", "web-1", pod_dir, views)], lambda: T0, mirror).ingest_all()
    kubelet = tmp_path / "var-log-pods" / "shop_web-1_1234-uid" / "web" / "0.log"
    assert kubelet.read_text() == (pod_dir / "logs" / "web" / "0.log").read_text()
    assert kubelet.read_text().endswith(" stdout F hello\n")
    assert (tmp_path / "var-log-pods").stat().st_mode & 0o777 == 0o755


def test_a_restart_keeps_current_and_previous_there_too(tmp_path: Path) -> None:
    pod_dir, mirror, views = setup(tmp_path)
    console = pod_dir / "vm" / "console.log"
    collector = Collector(lambda: [PodLogs("shop", "web-1", pod_dir, dict(views))], lambda: T0, mirror)
    for restarts in range(3):
        views["web"] = running(restarts, last=restarts > 0)
        with console.open("a") as handle:
            handle.write(f"[web] run {restarts}\n")
        collector.ingest_all()
    container = tmp_path / "var-log-pods" / "shop_web-1_1234-uid" / "web"
    assert sorted(p.name for p in container.iterdir()) == ["1.log", "2.log"]


def test_a_deleted_pods_directory_goes_and_others_stay(tmp_path: Path) -> None:
    pod_dir, mirror, views = setup(tmp_path)
    (pod_dir / "vm" / "console.log").write_text("[web] hello\n")
    gone = mirror.root / "shop_old_9999-uid" / "web"
    gone.mkdir(parents=True)
    foreign = mirror.root / "not-a-pod"
    foreign.mkdir()
    Collector(lambda: [PodLogs("shop", "web-1", pod_dir, views)], lambda: T0, mirror).ingest_all()
    assert sorted(p.name for p in mirror.root.iterdir()) == ["not-a-pod", "shop_web-1_1234-uid"]


def test_without_a_mirror_nothing_is_written_outside_the_state(tmp_path: Path) -> None:
    pod_dir, _, views = setup(tmp_path)
    (pod_dir / "vm" / "console.log").write_text("[web] hello\n")
    Collector(lambda: [PodLogs("shop", "web-1", pod_dir, views)], lambda: T0).ingest_all()
    assert list((tmp_path / "var-log-pods").iterdir()) == []
