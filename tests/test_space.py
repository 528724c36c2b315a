"""Search-space specs -> Optuna distributions, a table of inputs, plus sampling behaviour."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweeps.config.compose import compose_config
from sweeps.errors import ConfigError
from sweeps.search.space import apply_params, parse_search_space

pytestmark = pytest.mark.unit

GRAMMAR = [
    ("tag(log, interval(1e-5, 1.0))", FloatDistribution(1e-5, 1.0, log=True)),
    ("interval(0, 0.2)", FloatDistribution(0.0, 0.2)),
    ("int(interval(1, 5))", IntDistribution(1, 5)),
    ("tag(log, int(interval(8, 256)))", IntDistribution(8, 256, log=True)),
    ("choice(16, 32, 64, 128)", CategoricalDistribution([16, 32, 64, 128])),
    ("choice(adamw, sgd)", CategoricalDistribution(["adamw", "sgd"])),
    ("16,32", CategoricalDistribution([16, 32])),
    ("range(1, 4)", IntDistribution(1, 3)),
    ("range(0, 10, 5)", IntDistribution(0, 5, step=5)),
]


@pytest.mark.parametrize("text, expected", GRAMMAR)
def test_hydra_grammar_becomes_optuna_distribution(text: str, expected) -> None:
    cfg = compose_config([], )
    cfg.search = {"lr": text}
    (param,) = parse_search_space(cfg).params
    assert param.distribution == expected
    assert param.target == "train.lr"


MAPPINGS = [
    ({"type": "float", "low": 1e-4, "high": 0.1, "log": True}, FloatDistribution(1e-4, 0.1, log=True)),
    ({"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}, FloatDistribution(0.0, 1.0, step=0.25)),
    ({"type": "int", "low": 1, "high": 4}, IntDistribution(1, 4)),
    ({"type": "categorical", "choices": ["cosine", "wsd"]}, CategoricalDistribution(["cosine", "wsd"])),
    ({"choices": [1, 2]}, CategoricalDistribution([1, 2])),
]


@pytest.mark.parametrize("spec, expected", MAPPINGS)
def test_mapping_spec_becomes_optuna_distribution(spec, expected) -> None:
    cfg = compose_config([])
    cfg.search = {"weight_decay": spec}
    (param,) = parse_search_space(cfg).params
    assert param.distribution == expected


def test_zero_prob_gives_zero_with_that_probability_and_log_uniform_otherwise() -> None:
    cfg = compose_config([])
    cfg.search = {"weight_decay": {"type": "float", "low": 1e-6, "high": 0.1, "log": True, "zero_prob": 0.2}}
    space = parse_search_space(cfg)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = [space.sample(study.ask())["train.weight_decay"] for _ in range(4000)]
    zeros = sum(v == 0.0 for v in values) / len(values)
    assert zeros == pytest.approx(0.2, abs=0.025)
    nonzero = [math.log10(v) for v in values if v > 0]
    assert min(nonzero) >= -6 and max(nonzero) <= -1
    # log-uniform above low: each decade holds about a fifth of the non-zero draws
    share_first_decade = sum(v < -5 for v in nonzero) / len(nonzero)
    assert share_first_decade == pytest.approx(0.2, abs=0.03)


def test_conditional_param_is_sampled_only_for_its_schedule() -> None:
    cfg = compose_config([])
    cfg.search = {
        "schedule": "choice(cosine, wsd)",
        "cooldown_frac": {"expr": "interval(0.1, 0.3)", "when": {"schedule": "wsd"}, "key": "train.lr_min"},
    }
    space = parse_search_space(cfg)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(40):
        trial = study.ask()
        values = space.sample(trial)
        assert ("train.lr_min" in values) == (values["train.schedule"] == "wsd")
        assert ("cooldown_frac" in trial.params) == (values["train.schedule"] == "wsd")


def test_when_must_name_an_earlier_param() -> None:
    cfg = compose_config([])
    cfg.search = {"lr": {"expr": "interval(0.1, 0.3)", "when": {"schedule": "wsd"}}}
    with pytest.raises(ConfigError, match=r"search.lr.when='schedule': must name a search parameter defined above it"):
        parse_search_space(cfg)


def test_apply_params_sets_real_values_in_a_copy() -> None:
    cfg = compose_config([])
    trial_cfg = apply_params(cfg, {"train.lr": 0.05, "objective.hidden": 32})
    assert (trial_cfg.train.lr, trial_cfg.objective.hidden) == (0.05, 32)
    assert cfg.train.lr == 3e-3


def test_grid_needs_finite_values() -> None:
    cfg = compose_config(["search=lr_only"])
    with pytest.raises(ConfigError, match=r"search.lr='log-interval\(1e-05, 1.0\)': sweep.sampler=grid needs finite values"):
        parse_search_space(cfg).grid()
    cfg.search = {"lr": "choice(1e-3, 3e-3, 1e-2)", "layers": "range(1, 3)"}
    assert parse_search_space(cfg).grid() == {"lr": [1e-3, 3e-3, 1e-2], "layers": [1, 2]}
