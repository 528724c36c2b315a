"""Graceful stop on SIGINT/SIGTERM.

The first signal asks the worker to stop: it takes no new trial, and the running trial ends at its
next ``reporter.report`` (an epoch boundary) as FAIL with outcome ``interrupted``; it is re-queued
with the same params, so the study loses nothing and another worker (or the next run) retries it.
Its MLflow run is closed as KILLED. A second Ctrl-C interrupts at once. The process then exits with
128 + the signal number (130 for SIGINT, 143 for SIGTERM), as shells and container runtimes expect.

Closing the sweep (the parent run's summary and final status) runs ``shielded``: a Ctrl-C that
arrives then is held back until the parent run is closed, so a double Ctrl-C never leaves it RUNNING.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class StopFlag:
    signum: int | None = None

    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextmanager
def graceful_stop() -> Iterator[StopFlag]:
    """Install SIGINT/SIGTERM handlers for the duration (main thread only; elsewhere a no-op flag)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handle(signum: int, _frame: object) -> None:
        if flag.requested() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        flag.signum = signum

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def shielded() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back for the duration (a few writes that must not be cut in half); a
    signal that arrived is acted on afterwards, as a KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt
