"""The README's custom-objective example, as written, from an empty folder: the file it shows under
``# mypkg/train.py`` and the ``sweeps run`` command after it, with no PYTHONPATH for the folder."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

SECTION = (REPO_ROOT / "README.md").read_text().split("## Plug in your own objective", 1)[1]


def readme_example() -> tuple[str, list[str]]:
    code = re.search(r"```python\n(# mypkg/train\.py\n.*?)```", SECTION, re.S).group(1)
    command = re.search(r"```bash\n(sweeps run objective=custom .*?)\n```", SECTION, re.S).group(1)
    return code, shlex.split(command)


def test_readme_custom_objective_runs_as_written(tmp_path: Path) -> None:
    code, command = readme_example()
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "train.py").write_text(code)
    sweeps = Path(sys.executable).parent / "sweeps"  # the installed console script, as a user runs it
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith(("SWEEPS_", "MLFLOW_"))}  # a fresh shell
    done = subprocess.run([str(sweeps), *command[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    storage = f"sqlite:///{tmp_path}/optuna.db"
    name = next((arg.split("=", 1)[1] for arg in command if arg.startswith("sweep.study_name=")), "sweeps")
    assert optuna.get_all_study_names(storage) == [name]
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    n_trials = int(next((arg.split("=", 1)[1] for arg in command if arg.startswith("sweep.n_trials=")), 20))
    assert len(study.trials) == n_trials and complete and study.best_value > 0.5  # it trains (chance: 0.1)
    assert "No module named" not in done.stderr
