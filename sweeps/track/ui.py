"""``sweeps ui``: the MLflow UI on a local store, lean, quiet and never left behind.

``mlflow ui`` as shipped starts four server workers and a job runner (2.7 GB, 30-40 s to serve on
2 cores), prints deprecation warnings and one access-log line per request, and, stopped with
SIGTERM, leaves its workers running. Here the server runs with one worker and no job runner
(481 MB, 4-5 s, DESIGN.md), its output goes to a log file that is shown only if it fails to start,
and it runs in its own process group, which is ended (TERM, then KILL) on SIGTERM, SIGINT and any
exit of this process.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sweeps.errors import ConfigError
from sweeps.track.redact import redact

SERVER_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # the job runner is for GenAI jobs; it costs ~1 GB
    "PYTHONWARNINGS": "ignore",  # deprecation warnings of the server's dependencies, at every start
}
STOP_GRACE_SECONDS = 10.0
# MLflow 3's UI opens in its GenAI view (traces, an assistant) unless the URL or a toggle in the
# browser says otherwise; a sweep's runs are in the "Model training" view.
ML_VIEW = "workflowType=machine_learning"


def server_command(host: str, port: int) -> list[str]:
    """The MLflow server: one worker, no access log, warnings only. Its store comes from
    ``MLFLOW_BACKEND_STORE_URI`` (set by ``serve``): a URL with a password stays off the command line."""
    return [
        sys.executable, "-m", "mlflow", "server",
        "--host", host, "--port", str(port),
        "--workers", "1",
        "--uvicorn-opts", "--no-access-log --log-level warning",
    ]  # fmt: skip


DASHBOARD_STORAGE_ENV = "SWEEPS_DASHBOARD_STORAGE"


def dashboard_command(host: str, port: int) -> list[str]:
    """optuna-dashboard on the study storage, through its Python API: the storage URL comes from
    ``SWEEPS_DASHBOARD_STORAGE`` (set by ``serve``), because its own command line takes the URL, password
    and all, as an argument that every user of the machine can read in the process list."""
    code = f"import os, optuna_dashboard; optuna_dashboard.run_server(os.environ[{DASHBOARD_STORAGE_ENV!r}], host={host!r}, port={port})"
    return [sys.executable, "-c", code]


class ProcessGroup:
    """A child process in its own session; ``stop()`` ends every process of its group."""

    def __init__(self, command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                list(command), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """TERM to the whole group, KILL what is still there after ``grace`` seconds."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            if _group_gone(self.process, grace):
                break
        if self.process.poll() is None:
            self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _group_gone(process: subprocess.Popen, seconds: float) -> bool:
    """Wait until the group leader is reaped and no member is left; False after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        process.poll()
        if process.returncode is not None and not group_members(process.pid):
            return True
        time.sleep(0.1)
    return False


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (Linux ``/proc``; elsewhere the leader only)."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except ProcessLookupError:
            return []
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:  # state, ppid, pgrp
                members.append(int(entry.name))
    return members


def wait_until_serving(url: str, alive: Callable[[], bool], seconds: float) -> bool:
    """Poll ``url/health`` until it answers 200; False if the server exits or ``seconds`` pass."""
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def serve_tracking(uri: str, port: int, *, dashboard_storage: str | None = None, say: Callable[[str], None] = print) -> int:
    """``sweeps ui``: a tracking server's URL is its UI already; a local store gets ``serve``. The
    dashboard needs optuna-dashboard installed (the ``dashboard`` extra): refused before anything starts."""
    if uri.startswith(("http://", "https://")):
        say(f"MLflow UI: {uri} (served by the tracking server)")
        return 0
    if dashboard_storage is not None and importlib.util.find_spec("optuna_dashboard") is None:
        raise ConfigError("--dashboard", True, "optuna-dashboard is not installed", "pip install 'sweeps[dashboard]' (optuna-dashboard)")
    return serve(uri, port, dashboard_storage=dashboard_storage, say=say)


def serve(uri: str, port: int, host: str = "127.0.0.1", dashboard_storage: str | None = None, start_timeout: float = 120.0,
          say: Callable[[str], None] = print) -> int:
    """Run the MLflow UI on ``uri`` (and optuna-dashboard on ``dashboard_storage``, port + 1) until a signal.

    Returns the exit status to use: 0 after SIGINT/SIGTERM, the server's own status if it dies,
    1 if it never serves. Every child process group is ended before returning.
    """
    log_dir = Path(tempfile.mkdtemp(prefix="sweeps-ui-"))
    groups: list[ProcessGroup] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def stop_signal(signum: int, frame: object) -> None:
        raise _Stop(signum)

    for sig in previous:
        signal.signal(sig, stop_signal)
    try:
        started = time.monotonic()
        server = ProcessGroup(server_command(host, port), log_dir / "mlflow.log", {**SERVER_ENV, "MLFLOW_BACKEND_STORE_URI": uri})
        groups.append(server)
        if dashboard_storage is not None:
            groups.append(ProcessGroup(dashboard_command(host, port + 1), log_dir / "optuna-dashboard.log", {DASHBOARD_STORAGE_ENV: dashboard_storage}))
            say(f"Optuna dashboard: http://{host}:{port + 1}  (storage {redact(dashboard_storage)})")
        url = f"http://{host}:{port}"
        if not wait_until_serving(url, lambda: server.process.poll() is None, start_timeout):
            say(f"sweeps: error: the MLflow server did not start on {url}; its log ({server.log}):\n{server.log_tail()}")
            return 1
        say(f"MLflow UI: {url}/#/experiments?{ML_VIEW}  (store {redact(uri)}; serving after {time.monotonic() - started:.1f} s; Ctrl-C to stop)")
        code = server.process.wait()
        say(f"sweeps: the MLflow server exited with status {code}; its log: {server.log}")
        return code or 1
    except _Stop:
        return 0
    finally:
        for group in groups:
            group.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Stop(Exception):
    """A stop signal arrived (raised from the handler so ``finally`` ends the children)."""
