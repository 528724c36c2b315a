"""One process at a time initialises the embedded stores of a folder.

Two ``sweeps run`` started at once on the same fresh SQLite stores used to race through MLflow's
schema migrations and Optuna's table creation: the second died with a migration traceback. Opening
a sweep (creating or loading the study, the experiment and the parent run) therefore runs under an
exclusive file lock keyed by the SQLite files involved; the second process waits, then finds the
stores ready. Servers (PostgreSQL, an MLflow server) handle concurrent clients themselves.
"""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy


def sqlite_files(*urls: str) -> list[str]:
    """The resolved paths of the SQLite databases among ``urls``."""
    files = []
    for url in urls:
        try:
            parsed = sqlalchemy.engine.make_url(url)
        except (sqlalchemy.exc.ArgumentError, ValueError):
            continue
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            files.append(str(Path(parsed.database).expanduser().resolve()))
    return sorted(files)


@contextmanager
def store_init_lock(*urls: str) -> Iterator[None]:
    """Hold an exclusive lock for the SQLite stores among ``urls`` (nothing to lock: no-op). The lock
    file lives in the temporary folder, so nothing is added next to the stores."""
    files = sqlite_files(*urls)
    if not files:
        yield
        return
    key = hashlib.blake2b("\0".join(files).encode(), digest_size=8).hexdigest()
    with open(Path(tempfile.gettempdir()) / f"sweeps-stores-{key}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
