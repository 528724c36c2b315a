"""A rich console that stays readable when output goes to a file or a CI log (no terminal width)."""

from __future__ import annotations

import sys

from rich.console import Console

MIN_WIDTH_WITHOUT_TERMINAL = 140


def make_console() -> Console:
    """Terminal width on a terminal; at least 140 columns otherwise (rich would assume 80 and fold tables)."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=max(MIN_WIDTH_WITHOUT_TERMINAL, Console().width))
