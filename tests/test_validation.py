"""Every malformed input is one line naming the key, exit 2, and no store created or changed.

Table-driven through the real CLI (``sweeps run`` unless the row says otherwise), in an empty
folder (nothing may appear in it) and against existing stores (their bytes must not change).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sweeps.config.compose import compose_config
from sweeps.errors import ConfigError
from tests.conftest import REPO_ROOT, run_cli, store_overrides

pytestmark = pytest.mark.integration

LONG = "x" * 100_000
UNREACHABLE_PG = "postgresql+psycopg://nobody@127.0.0.1:9/none"

# (arguments, the key the line must name)
MALFORMED: list[tuple[list[str], str]] = [
    (["sweep.study_name=" + "s" * 5000], "sweep.study_name"),
    (["sweep.study_name=a b"], "sweep.study_name"),
    (["sweep.seed=abc"], "sweep.seed"),
    (["sweep.seed=-1"], "sweep.seed"),
    (["sweep.n_trials=abc"], "sweep.n_trials"),
    (["sweep.n_trials=0"], "sweep.n_trials"),
    (["sweep.n_trial=5"], "sweep.n_trial"),
    (["sweep.workers=abc"], "sweep.workers"),
    (["sweep.sampler=cmaes"], "sweep.sampler"),
    (["sweep.pruner=asha"], "sweep.pruner"),
    (["sweep.direction=up"], "sweep.direction"),
    (["sweep.metric=" + LONG], "sweep.metric"),
    (["sweep.tpe.n_startup_trials=-1"], "sweep.tpe.n_startup_trials"),
    (["sweep.tpe.multivariate=maybe"], "sweep.tpe.multivariate"),
    (["sweep.hyperband.reduction_factor=abc"], "sweep.hyperband.reduction_factor"),
    (["sweep.hyperband.min_resource=99"], "sweep.hyperband.min_resource"),
    (["sweep.median.n_warmup_steps=-2"], "sweep.median.n_warmup_steps"),
    (["tracking.flush_seconds=abc"], "tracking.flush_seconds"),
    (["tracking.flush_seconds=-1"], "tracking.flush_seconds"),
    (["tracking.log_steps=often"], "tracking.log_steps"),
    (["storage.heartbeat_interval=abc"], "storage.heartbeat_interval"),
    (["storage.heartbeat_interval=0"], "storage.heartbeat_interval"),
    (["storage.grace_period=10"], "storage.grace_period"),
    (["storage.max_retry=-1"], "storage.max_retry"),
    (["storage.reap_interval=0"], "storage.reap_interval"),
    (["storage.url=postgresql+psycopg://u@127.0.0.1:notaport/db"], "storage.url"),
    (["storage.url=notaurl"], "storage.url"),
    (["storage.url=sqlite:////proc/optuna.db"], "storage.url"),
    (["storage.url=sqlite:///no/such/folder/optuna.db"], "storage.url"),
    (["storage=postgres"], "storage.url"),
    (["tracking.uri=sqlite:////proc/mlflow.db"], "tracking.uri"),
    (["tracking.uri=ftp://somewhere"], "tracking.uri"),
    (["train.schedule=foo"], "train.schedule"),
    (["train.schedule=cosin"], "train.schedule"),
    (["train.warmup_frac=2"], "train.warmup_frac"),
    (["train.lr=-1"], "train.lr"),
    (["train.batch_size=0"], "train.batch_size"),
    (["train.weight_decay=-0.1"], "train.weight_decay"),
    (["train.momentum=1.5"], "train.momentum"),
    (["train.grad_clip=-1"], "train.grad_clip"),
    (["train.threads=0"], "train.threads"),
    (["train.seed=abc"], "train.seed"),
    (["train.optimizer=lamb"], "train.optimizer"),
    (["train.device=tpu"], "train.device"),
    (["train.betas=[0.9]"], "train.betas"),
    (["train.schedule=wsd", "train.cooldown_frac=0"], "train.cooldown_frac"),
    (["train.epoch=3"], "train.epoch"),
    (["search.batch_size=choice(16, x)"], "search.batch_size"),
    (["search.batch_size=choice(0, 16)"], "search.batch_size"),
    (["search.lr=interval(-0.1, 0.1)"], "search.lr"),
    (["search.lr=tag(log, interval(0, 1))"], "search.lr"),
    (["search.warmup_frac=interval(0.5, 3)"], "search.warmup_frac"),
    (["search=lr_schedule", "search.cooldown_frac.expr=interval(0.1, 1.5)"], "search.cooldown_frac"),
    (["objective=nope"], "objective"),
    (["objective.target=no_such_module:train"], "objective.target"),
    (["lr_find=auto", "search=lr_only", "+search.lr_only_extra=choice(1, 2)"], "search.lr_only_extra"),
    (["reproduce", "s", "--seeds", "0"], "--seeds"),
    (["reproduce", "s", "--top", "0"], "--top"),
]


def _verb(args: list[str]) -> list[str]:
    return args if args[0] in ("reproduce", "status", "best", "extend") else ["run", *args]


def _one_error_line(done, key: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    line = lines[0]
    assert line.startswith("sweeps: error: ") and len(line) <= 300, line
    assert key in line, line
    return line


@dataclass
class Done:
    returncode: int
    stderr: str


def run_main(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Done:
    """The ``sweeps`` entry point (``sweeps.cli.main``) in this process: the same parsing, checks
    and exit codes as the command, without paying the stack's imports for each of the rows."""
    from sweeps.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["sweeps", *args])
    for name in ("MLFLOW_LOGGING_LEVEL", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "GIT_PYTHON_REFRESH", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test (main sets them)
        monkeypatch.delenv(name)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    return Done(int(exited.value.code or 0), capsys.readouterr().err)


@pytest.mark.parametrize(("args", "key"), MALFORMED, ids=[" ".join(a)[:60] for a, _ in MALFORMED])
def test_malformed_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, args: list[str], key: str, monkeypatch, capsys) -> None:
    monkeypatch.delenv("SWEEPS_STORAGE_URL", raising=False)
    _one_error_line(run_main(_verb(args), tmp_path, monkeypatch, capsys), key)
    assert list(tmp_path.iterdir()) == [], "bad input created a file"


@pytest.mark.parametrize(("args", "key"), [MALFORMED[2], MALFORMED[17], MALFORMED[33]])
def test_as_a_command_bad_input_exits_2_before_importing_the_stack(tmp_path: Path, args: list[str], key: str) -> None:
    probe = "import runpy, sys; sys.argv = ['sweeps', *sys.argv[1:]]\ntry:\n    runpy.run_module('sweeps.cli', run_name='__main__')\nfinally:\n" \
            "    print('loaded:', *sorted(m for m in ('torch', 'mlflow', 'optuna') if m in sys.modules), file=sys.stderr)"
    import subprocess

    done = subprocess.run([sys.executable, "-c", probe, *_verb(args)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    error, loaded = done.stderr.strip().splitlines()
    assert done.returncode == 2 and key in error and error.startswith("sweeps: error: ")
    assert loaded == "loaded:", loaded  # refused before torch, MLflow or Optuna is imported
    assert list(tmp_path.iterdir()) == []


def test_at_least_forty_rows() -> None:
    assert len(MALFORMED) >= 40


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bad_input_leaves_existing_stores_untouched(tmp_path: Path, monkeypatch, capsys) -> None:
    stores = store_overrides(tmp_path)
    fast = ["objective=custom", "objective.target=tests.objectives_for_tests:quadratic", "search=lr_only", "sweep.pruner=none", "train.epochs=2", "sweep.n_trials=2"]
    first = run_cli("run", *stores, *fast, "sweep.study_name=kept", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = _digest(tmp_path)
    for args, key in [
        (["sweep.study_name=kept", "sweep.seed=abc"], "sweep.seed"),
        (["sweep.study_name=kept", "search.lr=interval(-0.1, 0.1)"], "search.lr"),
        (["sweep.study_name=kept", "tracking.flush_seconds=abc"], "tracking.flush_seconds"),
        (["sweep.study_name=" + "k" * 5000], "sweep.study_name"),
    ]:
        _one_error_line(run_main(["run", *stores, *fast, *args], tmp_path, monkeypatch, capsys), key)
    assert _digest(tmp_path) == before


def test_read_only_verbs_never_create_a_store(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("SWEEPS_STORAGE_URL", raising=False)
    for args in (["status", "nosuch"], ["status", "nosuch", "storage.url=sqlite:///typo.db"], ["best", "nosuch"], ["extend", "nosuch", "5"]):
        _one_error_line(run_main(args, tmp_path, monkeypatch, capsys), "storage.url")
    assert list(tmp_path.iterdir()) == []


def test_train_config_refuses_typos_honours_plus_keys_and_checks_the_target(tmp_path: Path) -> None:
    exported = tmp_path / "best.yaml"
    cfg = compose_config(["objective=custom", "objective.target=tests.objectives_for_tests:quadratic"])
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop("storage"), data.pop("tracking")
    exported.write_text(OmegaConf.to_yaml(data))
    local = compose_config(store_overrides(tmp_path))
    from sweeps.config.compose import load_exported

    with pytest.raises(ConfigError, match=r"train.epoch='3': no such key in .*did you mean train.epochs\?"):
        load_exported(exported, ["train.epoch=3"], local)
    assert load_exported(exported, ["+train.epochs=2"], local).train.epochs == 2
    assert load_exported(exported, ["train.epochs=4", "+objective.extra=1"], local).objective.extra == 1
    broken = tmp_path / "broken.yaml"
    broken.write_text(exported.read_text().replace("tests.objectives_for_tests:quadratic", "no_such_module:train"))
    with pytest.raises(ConfigError, match="objective.target='no_such_module:train': cannot import"):
        load_exported(broken, [], local)
    done = run_cli("train", "--config", str(exported), "train.epoch=3", *store_overrides(tmp_path), cwd=tmp_path)
    _one_error_line(done, "train.epoch")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.yaml", "broken.yaml"]


def test_config_error_cuts_long_values_and_hides_passwords() -> None:
    message = str(ConfigError("sweep.metric", LONG, "unknown metric", LONG))
    assert len(message) < 400 and "(100000 chars)" in message
    assert "***" in str(ConfigError("storage.url", "postgresql://u:secret@h/db", "cannot connect"))
    assert "secret" not in str(ConfigError("storage.url", "postgresql://u:secret@h/db", "cannot connect"))


def test_a_postgresql_role_without_grants_is_one_line(postgres_database: str) -> None:
    import uuid

    import sqlalchemy

    from sweeps.search.study import check_storage

    role = f"sweeps_nogrant_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-not-shown'"))
        connection.execute(sqlalchemy.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    url = sqlalchemy.engine.make_url(postgres_database).set(username=role, password="pw-not-shown").render_as_string(hide_password=False)
    try:
        with pytest.raises(ConfigError, match=rf"role {role} cannot create the study tables") as caught:
            check_storage(url)
        assert "pw-not-shown" not in str(caught.value)
        with admin.connect() as connection:  # tables made by another role, none granted to this one
            connection.execute(sqlalchemy.text("CREATE TABLE studies (study_id int)"))
        with pytest.raises(ConfigError, match=rf"role {role} cannot read and write table studies"):
            check_storage(url)
        check_storage(postgres_database)  # the owner can
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP OWNED BY {role}"))
            connection.execute(sqlalchemy.text(f"DROP ROLE {role}"))
        admin.dispose()


def test_two_runs_on_the_same_fresh_stores_at_once_both_succeed(tmp_path: Path) -> None:
    import subprocess

    stores = store_overrides(tmp_path)
    fast = ["objective=custom", "objective.target=tests.objectives_for_tests:quadratic", "search=lr_only", "sweep.pruner=none", "train.epochs=2",
            "sweep.n_trials=2"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    runs = [subprocess.Popen([sys.executable, "-m", "sweeps.cli", "run", *stores, *fast], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert [code for code, _ in results] == [0, 0], results
    assert not any("Traceback" in err for _, err in results)
