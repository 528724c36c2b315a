"""``sweeps ui`` as a user runs it: a lean MLflow server that serves the store and leaves nothing
behind when stopped with Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from sweeps.track.tracker import SweepTracker
from sweeps.track.ui import group_members, server_command
from tests.conftest import REPO_ROOT, free_port

pytestmark = pytest.mark.integration

RSS_LIMIT_MB = 1024


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total / 1024


def test_server_runs_one_worker_without_access_log() -> None:
    command = server_command("127.0.0.1", 5000)
    assert command[command.index("--workers") + 1] == "1"
    assert "--backend-store-uri" not in command  # from the environment: no password on a command line
    assert "--no-access-log" in command[command.index("--uvicorn-opts") + 1]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process groups from /proc")
@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_ui_serves_quietly_under_1gb_and_leaves_no_process(tmp_path: Path, stop_with: signal.Signals) -> None:
    tracker = SweepTracker(f"sqlite:///{tmp_path}/mlflow.db", "s1")
    tracker.open_parent({})
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "sweeps.cli", "ui", "--port", str(port)], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        line = ui.stdout.readline()  # printed once /health answers
        assert line.startswith(f"MLflow UI: http://127.0.0.1:{port}"), (line, ui.stderr.read() if ui.poll() is not None else "")
        url = f"http://127.0.0.1:{port}"
        for _ in range(5):  # page loads: no access-log line each
            assert requests.get(url, timeout=10).ok
        found = requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "s1"}, timeout=10)
        assert found.ok and found.json()["experiment"]["name"] == "s1"
        (server,) = children(ui.pid)
        members = group_members(server)
        assert 1 <= len(members) <= 2  # mlflow's launcher and one uvicorn worker: no job runner, no worker pool
        assert rss_mb([ui.pid, *members]) < RSS_LIMIT_MB

        os.kill(ui.pid, stop_with)  # the command only, as a terminal or a process manager would
        assert ui.wait(timeout=30) == 0
        deadline = time.monotonic() + 15
        while group_members(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert group_members(server) == []
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
        assert ui.stderr.read() == ""  # no warnings, no request log
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads command lines from /proc")
def test_dashboard_reads_the_storage_url_from_its_environment_never_its_command_line(tmp_path: Path, postgres_database: str) -> None:
    """optuna-dashboard's own CLI takes the storage URL as an argument: anyone on the machine could
    read its password in the process list. ``sweeps ui --dashboard`` starts it with the URL in its
    environment; the dashboard still serves the study storage."""
    import uuid

    import sqlalchemy

    secret = f"pw{uuid.uuid4().hex}"  # the test server trusts local connections: any password logs in
    storage = sqlalchemy.engine.make_url(postgres_database).set(password=secret).render_as_string(hide_password=False)
    import optuna

    optuna.create_study(storage=storage, study_name="s1")  # what a sweep leaves: the dashboard reads, never creates
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "sweeps.cli", "ui", "--port", str(port), "--dashboard", "storage=postgres", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "SWEEPS_STORAGE_URL": storage},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        lines = [ui.stdout.readline(), ui.stdout.readline()]  # the dashboard's line, then the MLflow UI's once it serves
        assert lines[0].startswith(f"Optuna dashboard: http://127.0.0.1:{port + 1}"), (lines, ui.stderr.read() if ui.poll() is not None else "")
        assert lines[1].startswith(f"MLflow UI: http://127.0.0.1:{port}")
        deadline, studies = time.monotonic() + 60, None
        while studies is None and time.monotonic() < deadline:
            try:
                answer = requests.get(f"http://127.0.0.1:{port + 1}/api/studies", timeout=2)
                studies = answer.json()["study_summaries"] if answer.ok else None
            except requests.ConnectionError:
                time.sleep(0.2)
        assert studies is not None, "optuna-dashboard did not serve the storage within 60 s"
        assert [s["study_name"] for s in studies] == ["s1"]
        pids = [ui.pid, *(member for child in children(ui.pid) for member in group_members(child))]
        argv = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace") for pid in pids]
        assert any("optuna_dashboard" in line for line in argv), argv
        assert not [line for line in argv if secret in line]
        os.kill(ui.pid, signal.SIGTERM)
        assert ui.wait(timeout=30) == 0
        assert secret not in "".join(lines) + ui.stdout.read() + ui.stderr.read()
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
