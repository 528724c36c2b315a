"""The one exception type for bad user input.

Every config or input problem becomes a ``ConfigError`` that names the key, the value and what is
allowed; the CLI prints its single line and exits with status 2 before anything is written.
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A user-facing configuration error: ``key=value: problem; allowed: ...``."""

    def __init__(self, key: str, value: Any, problem: str, allowed: str | None = None) -> None:
        self.key = key
        self.value = value
        self.problem = problem
        self.allowed = allowed
        message = f"{key}={value!r}: {problem}"
        if allowed:
            message += f"; allowed: {allowed}"
        super().__init__(message)
