"""Run a function right after a module is first imported, without importing it now.

The CLI refuses bad input before it imports the heavy stack (Optuna, MLflow, torch: seconds), yet
some libraries need settings applied once imported (Optuna sets its own log level on import).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType


def after_import(name: str, hook: Callable[[ModuleType], None]) -> None:
    """Call ``hook(module)`` once module ``name`` is imported (now, if it already is)."""
    if name in sys.modules:
        hook(sys.modules[name])
        return
    sys.meta_path.insert(0, _AfterImport(name, hook))


class _AfterImport(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, hook: Callable[[ModuleType], None]) -> None:
        self.name, self.hook = name, hook

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # find the real spec with the other finders, once
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute, hook = spec.loader.exec_module, self.hook

        def exec_module(module: ModuleType) -> None:
            execute(module)
            hook(module)

        spec.loader.exec_module = exec_module
        return spec
