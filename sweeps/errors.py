"""The one exception type for bad user input.

Every config or input problem becomes a ``ConfigError`` that names the key, the value and what is
allowed; the CLI prints its single line and exits with status 2 before anything is written.
"""

from __future__ import annotations

from typing import Any

from sweeps.track.redact import redact


class ConfigError(ValueError):
    """A user-facing configuration error: ``key=value: problem; allowed: ...``."""

    def __init__(self, key: str, value: Any, problem: str, allowed: str | None = None) -> None:
        self.key = key
        self.value = value
        self.problem = problem
        self.allowed = allowed
        # one line that fits a terminal: long parts are cut, any URL's password hidden
        message = f"{_cut(str(key), 80)}={_cut(repr(value), 100)}: {_cut(str(problem), 160)}"
        if allowed:
            message += f"; allowed: {_cut(str(allowed), 120)}"
        super().__init__(redact(" ".join(message.split())))


class SweepFailed(RuntimeError):
    """Trials kept failing (``sweep.max_failures`` in a row): the sweep stops, exit 1, with the error."""


class StoreUnavailable(RuntimeError):
    """A database stayed unreachable longer than the retry deadline (``sweeps.search.db_retry``): exit 1."""


def _cut(text: str, limit: int) -> str:
    """``text`` shortened to about ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} chars)"


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (a driver's or parser's error can run to pages), or its type name."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
