"""A ``sweeps`` process factory for the tests: ``python -m sweeps.cli`` without paying its imports each time.

Most integration tests run the CLI as a user does, in a process of its own; most of such a process's
seconds went to importing Optuna, MLflow, SQLAlchemy, Hydra and torch (``benchmarks/cli_startup.py``:
``import sweeps.run.sweep`` alone takes 3-5 s on 2 cores). This server imports them once, then forks
one child per command: a real process with its own pid, working directory, environment, argv,
standard streams and exit status, which runs ``sweeps.cli`` as ``__main__`` exactly as ``python -m``
would (the working directory first on ``sys.path``, ``atexit`` handlers at exit). The server opens no
store, starts no thread and runs no torch op before forking, so a child inherits no connection and
no thread pool. ``tests/conftest.py:run_cli`` starts one per test process (``python -m
tests.cli_server``, in its own session, ended with the test process) and uses it; ``SWEEPS_TEST_FORK_SERVER=0`` runs every
command with a fresh interpreter instead.

Protocol, one Unix-socket connection per command: the client sends a JSON request (argv, cwd, env,
stdin, stdout and stderr file paths) and closes its side for writing; the child answers its pid as one line,
then its exit status as a second line once it ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

PRELOAD = (
    "sweeps.cli", "sweeps.config.compose", "sweeps.run.sweep", "sweeps.run.launcher", "sweeps.results.plots",
    "sweeps.results.study_report", "sweeps.results.production", "sweeps.search.preview", "sweeps.lr.runner",
    "objectives.digits_mlp",
)


def serve(path: str) -> None:
    import importlib

    from sweeps.cli import _quiet_libraries

    _quiet_libraries()  # what sweeps.cli.main does before the stack loads: MLflow reads its log level when imported
    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the system; each reports its own status
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    while True:
        connection, _ = listener.accept()
        request = json.loads(_read_all(connection))
        if os.fork() == 0:
            listener.close()
            _run_child(request, connection)  # never returns
        connection.close()


def _read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _run_child(request: dict, connection: socket.socket) -> None:
    import atexit
    import runpy
    import traceback

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the command waits for its own subprocesses
    connection.sendall(f"{os.getpid()}\n".encode())
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(os.open(request["stdin"], os.O_RDONLY), 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path.insert(0, request["cwd"])  # python -m puts the working directory first
    sys.argv = ["sweeps", *request["argv"]]
    sys.modules.pop("sweeps.cli", None)  # as under python -m: the module runs as __main__ only
    code = 0
    try:
        runpy.run_module("sweeps.cli", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if done.code is not None and not isinstance(done.code, int):
            print(done.code, file=sys.stderr)
    except BaseException:  # what the interpreter does with an uncaught exception
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            connection.sendall(f"{code}\n".encode())
        finally:
            os._exit(code)


if __name__ == "__main__":
    serve(sys.argv[1])
