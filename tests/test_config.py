"""Composing the shipped config: every option composes, overrides follow Hydra's grammar, and bad
input is one line naming the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.config.compose import builtin_config_dir, compose_config
from sweeps.errors import ConfigError
from sweeps.search.space import parse_search_space

pytestmark = pytest.mark.unit

GROUPS = ("objective", "search", "train", "sweep", "storage", "tracking", "lr_find", "diagnosis")


def shipped_options() -> list[str]:
    root = builtin_config_dir()
    return [f"{group}={path.stem}" for group in GROUPS for path in sorted((root / group).glob("*.yaml"))]


@pytest.mark.parametrize("option", shipped_options())
def test_every_shipped_config_composes_and_its_search_space_parses(option: str) -> None:
    overrides = [option] + (["objective.target=objectives.digits_mlp:train"] if option == "objective=custom" else [])
    group, _, name = option.partition("=")
    if group == "search" and (builtin_config_dir() / "objective" / f"{name}.yaml").exists():
        overrides.insert(0, f"objective={name}")  # an objective's own space (search=lcbench) sets its objective's keys
    cfg = compose_config(overrides)
    parse_search_space(cfg)
    assert cfg.train.epochs > 0 and cfg.sweep.n_trials > 0


def test_public_override_keys_reach_the_config() -> None:
    cfg = compose_config(
        [
            "objective=digits_mlp",
            "sweep.n_trials=7",
            "sweep.study_name=abc",
            "sweep.seed=3",
            "sweep.sampler=random",
            "sweep.pruner=median",
            "sweep.metric=val_loss",
            "sweep.direction=minimize",
            "train.epochs=4",
            "storage.url=sqlite:///x.db",
            "tracking.uri=sqlite:///y.db",
            "+train.label_smoothing=0.1",
        ]
    )
    assert (cfg.sweep.n_trials, cfg.sweep.study_name, cfg.sweep.seed) == (7, "abc", 3)
    assert (cfg.sweep.sampler, cfg.sweep.pruner, cfg.sweep.metric, cfg.sweep.direction) == ("random", "median", "val_loss", "minimize")
    assert (cfg.train.epochs, cfg.storage.url, cfg.tracking.uri, cfg.train.label_smoothing) == (4, "sqlite:///x.db", "sqlite:///y.db", 0.1)


def test_search_expression_on_the_command_line_replaces_the_entry() -> None:
    cfg = compose_config(["search.lr=tag(log, interval(1e-5, 0.1))", "+search.hidden=choice(64, 128)"])
    assert cfg.search.lr == "tag(log, interval(1e-5, 0.1))"
    space = {p.name: p for p in parse_search_space(cfg).params}
    assert (space["lr"].distribution.low, space["lr"].distribution.high, space["lr"].distribution.log) == (1e-5, 0.1, True)
    assert space["hidden"].target == "objective.hidden"


def test_user_config_dir_adds_options(tmp_path: Path) -> None:
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "tiny.yaml").write_text("lr: tag(log, interval(1e-3, 1e-2))\n")
    cfg = compose_config(["search=tiny"], config_dir=tmp_path)
    assert list(cfg.search) == ["lr"]


BAD_INPUT = [
    (["objective=nope"], "objective='nope': unknown objective option; allowed: custom, digits_mlp"),
    (["search=nope"], "search='nope': unknown search option"),
    (["train.nope=1"], "train.nope='1': no such config key; allowed: an existing key, or +train.nope=<value> to add one"),
    (["nope=1"], "nope='1': no such config key"),
    (["train.epochs=0"], "train.epochs=0: must be a positive integer"),
    (["train.epochs=-3"], "train.epochs=-3: must be a positive integer"),
    (["sweep.n_trials=0"], "sweep.n_trials=0: must be a positive integer"),
    (["sweep.sampler=cmaes"], "sweep.sampler='cmaes': unknown value; allowed: tpe, gp, random, grid"),
    (["sweep.pruner=asha"], "sweep.pruner='asha': unknown value; allowed: hyperband, median, none"),
    (["sweep.direction=up"], "sweep.direction='up': unknown value; allowed: maximize, minimize"),
    (["train.lr=choice(1, 2)"], "train.lr='choice(1, 2)': sweep expressions belong under search.<param>"),
    (["search.weight_decay.type=floot"], "search.weight_decay.type='floot': unknown search parameter type; allowed: float, int, categorical"),
    (["search.weight_decay.low=0.5"], "search.weight_decay.low=0.5: must be < high=0.1"),
    (["search.lr=tag(log, interval(0, 1))"], "search.lr.low=0.0: a log scale needs low > 0"),
    (["search.lr=interval(1, 0.5)"], "search.lr.low=1.0: must be < high=0.5"),
    (["+search.nope=choice(1, 2)"], "search.nope='nope': sets neither train.<name> nor objective.<name>"),
]


@pytest.mark.parametrize("overrides, message", BAD_INPUT)
def test_bad_input_names_key_value_and_what_is_allowed(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_search_space(compose_config(overrides))
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
