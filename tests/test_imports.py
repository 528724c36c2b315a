"""What importing an entry module loads: the CLI and config validation load none of the heavy
libraries (a bad override is refused before them), the Hyperband arithmetic neither Optuna nor
torch, and an objective (through the trainer) no Optuna, SQLAlchemy or MLflow. Each check runs in a
fresh interpreter; nothing is timed (``benchmarks/cli_startup.py`` measures the start-up)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

HEAVY = ("optuna", "sqlalchemy", "mlflow", "torch", "matplotlib", "sklearn")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "statement, allowed",
    [
        ("import sweeps.cli", set()),
        ("import sweeps.config.compose", set()),
        ("import sweeps.search.hyperband", set()),
        ("import objectives.digits_mlp", {"torch", "sklearn"}),  # its own data and the trainer; no sweep stack
    ],
)
def test_an_entry_module_loads_only_what_it_needs(statement: str, allowed: set[str]) -> None:
    loaded = loaded_after(statement)
    assert loaded <= allowed
    if statement == "import objectives.digits_mlp":
        assert "torch" in loaded  # the check sees what is loaded
