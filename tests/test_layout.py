"""The README's Layout section is the package's tree: every module listed where it lives, nothing listed that is gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def _layout_modules() -> set[str]:
    """``package/module.py`` for every module the README's Layout block names under ``sweeps/``."""
    block = ROOT.joinpath("README.md").read_text().split("## Layout", 1)[1].split("```")[1]
    listed, folder = set(), None
    for line in block.splitlines():
        head = re.match(r"(sweeps/| {2}([a-z_]+)/)\s", line)
        if head:
            folder = "" if head.group(1) == "sweeps/" else f"{head.group(2)}/"
        elif not line.startswith(" "):
            folder = None  # hydra_plugins/, objectives/, ...: outside the package
        if folder is not None:
            listed |= {f"{folder}{name}" for name in re.findall(r"\b([a-z_]+\.py)\b", line)}
    return listed


def test_the_readme_layout_lists_every_module_where_it_lives() -> None:
    tree = {p.relative_to(ROOT / "sweeps").as_posix() for p in (ROOT / "sweeps").rglob("*.py") if p.name != "__init__.py"}
    listed = _layout_modules()
    assert "run/sweep.py" in listed and "cli.py" in listed
    assert tree - listed == set(), "modules missing from the README's Layout"
    assert listed - tree == set(), "the README's Layout lists modules that are not in the tree"


def test_no_module_name_is_used_twice_or_looks_like_a_test() -> None:
    names = [p.stem for p in (ROOT / "sweeps").rglob("*.py") if p.name != "__init__.py"]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert not [n for n in names if n.startswith("test_") or n.endswith("_test")]
