"""One redaction for every place a URL can appear: printed lines, error messages, MLflow params,
tags and artifacts, exported configs, worker logs.

A database URL carries its password (``postgresql+psycopg://user:PASSWORD@host/db``), and config
values resolved from the environment (``${oc.env:SWEEPS_STORAGE_URL}``) carry it wherever they are
written. Every writer calls ``redact`` on the text it is about to write, so the password never reaches
an artifact, a store, a terminal or a log: ``user:***@host``. Child processes get the URLs through
their environment, never their command line (``sweeps.run.launcher``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

HIDDEN = "***"
# scheme://user:password@ — the password is everything up to the last '@' before the host part
_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*:)(?P<password>[^\s/?#'\"]*)@")


def redact(text: Any) -> Any:
    """``text`` with the password of every URL in it hidden; non-strings are returned unchanged."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _CREDENTIALS.sub(lambda m: f"{m.group('head')}{HIDDEN}@" if m.group("password") != HIDDEN else m.group(0), text)


def redact_values(data: Any) -> Any:
    """A copy of nested mappings and lists with ``redact`` applied to every string."""
    if isinstance(data, Mapping):
        return {key: redact_values(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_values(value) for value in data]
    return redact(data)
