"""Mixed precision, torch.compile and device settings of the shared trainer, on the CPU.

bf16 autocast runs on the CPU, so its numerics are tested here; fp16 needs CUDA and is refused
on the CPU before anything is written. The GPU numbers (speed, fp16 with its loss scaler, CUDA
determinism) come from ``benchmarks/gpu.py`` on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from objectives import tiny_transformer
from objectives.digits_mlp import make_task
from sweeps.config.compose import compose_config
from sweeps.errors import ConfigError
from sweeps.train.accelerator import CUBLAS_WORKSPACE, prepare_device, to_device
from sweeps.train.precision import MixedPrecision, check_precision
from sweeps.train.reporter import recording_reporter
from sweeps.train.training import evaluate, train
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def train_digits(compose, *overrides: str):
    cfg = compose("train.epochs=3", *overrides)
    return train(make_task(cfg.objective), cfg.train, recording_reporter("val_acc"))


def test_bf16_on_the_cpu_trains_and_matches_fp32(compose) -> None:
    fp32 = train_digits(compose, "train.precision=fp32")
    bf16 = train_digits(compose, "train.precision=bf16")
    assert bf16.step_losses != fp32.step_losses  # autocast really ran the matmuls in bf16 ...
    assert bf16.step_losses[0] == pytest.approx(fp32.step_losses[0], rel=1e-2)  # ... to bf16's 8-bit mantissa
    assert bf16.metrics["val_acc"] >= 0.9
    assert bf16.metrics["val_acc"] == pytest.approx(fp32.metrics["val_acc"], abs=0.02)
    assert bf16.metrics["val_loss"] == pytest.approx(fp32.metrics["val_loss"], rel=0.05)
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())  # weights and optimizer state stay fp32


def test_bf16_transformer_with_clipping_matches_fp32(compose) -> None:
    def run(precision: str):
        cfg = compose("objective=tiny_transformer", "objective.n_train=256", "objective.n_val=128", "train.epochs=2",
                      "train.grad_clip=1.0", f"train.precision={precision}")
        return train(tiny_transformer.make_task(cfg.objective), cfg.train, recording_reporter("val_acc"))

    fp32, bf16 = run("fp32"), run("bf16")
    assert bf16.metrics["val_loss"] == pytest.approx(fp32.metrics["val_loss"], rel=0.02)
    assert bf16.metrics["val_acc"] == pytest.approx(fp32.metrics["val_acc"], abs=0.03)


def test_bf16_evaluation_is_float32_loss_over_bf16_logits(compose) -> None:
    cfg = compose()
    task = make_task(cfg.objective)
    torch.manual_seed(0)
    model = task.build_model()
    plain = evaluate(model, task, task.val_data)
    mixed = evaluate(model, task, task.val_data, precision=MixedPrecision("bf16", "cpu"))
    assert mixed["val_loss"] != plain["val_loss"]
    assert mixed["val_loss"] == pytest.approx(plain["val_loss"], rel=1e-2)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.precision=fp8"], "train.precision='fp8': unknown precision; allowed: fp32, bf16, fp16"),
        (["train.precision=fp16", "train.device=cpu"], "train.precision='fp16': fp16 needs a CUDA device"),
        (["train.compile=yes"], "train.compile='yes': must be true or false"),
        (["train.deterministic=1"], "train.deterministic=1: must be true or false"),
    ],
)
def test_bad_precision_settings_are_refused_by_the_config_check(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compose_config(overrides)
    assert str(caught.value).startswith(message)


def test_unknown_precision_exits_2_before_anything_is_written(tmp_path: Path) -> None:
    done = run_cli("run", "train.precision=fp8", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["sweeps: error: train.precision='fp8': unknown precision; allowed: fp32, bf16, fp16"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 on device=auto is allowed where CUDA is present")
def test_fp16_on_a_machine_without_cuda_is_refused() -> None:
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        compose_config(["train.precision=fp16"])  # device=auto resolves to the CPU here
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device, not cpu"):
        MixedPrecision("fp16", "cpu")  # a worker joining an fp16 study without a GPU fails its trials the same way
    check_precision({"precision": "fp16", "device": "cuda:1"})  # explicitly CUDA: the worker's own affair


def test_compile_gives_the_eager_result_and_keeps_the_plain_model(compose) -> None:
    """torch.compile's one-off cost is paid in the trial (here 5-35 s on 2 CPU cores, once per process)."""
    eager = train_digits(compose, "train.epochs=2")
    compiled = train_digits(compose, "train.epochs=2", "train.compile=true")
    assert compiled.metrics["val_acc"] == pytest.approx(eager.metrics["val_acc"], abs=0.01)
    assert compiled.step_losses[0] == pytest.approx(eager.step_losses[0], rel=1e-4)
    assert type(compiled.model) is type(eager.model)  # checkpoints keep plain state_dict keys
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())


def test_cuda_determinism_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled())
    prepare_device(torch.device("cpu"), deterministic=True)  # nothing on the CPU: it is deterministic already
    assert torch.are_deterministic_algorithms_enabled() == before[2]
    try:
        prepare_device(torch.device("cuda"), deterministic=True)
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert __import__("os").environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
        prepare_device(torch.device("cuda"), deterministic=False)  # each trial sets them to its own config
        assert not torch.backends.cudnn.deterministic and not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[:2]
        torch.use_deterministic_algorithms(before[2])


def test_copies_to_the_cpu_are_the_tensor_itself() -> None:
    tensor = torch.arange(6)
    assert to_device(tensor, torch.device("cpu")) is tensor
