"""Mixed precision for the shared trainer: ``train.precision = fp32 | bf16 | fp16``.

``bf16`` and ``fp16`` run the forward pass and the loss under ``torch.autocast`` (matrix products
and convolutions in the low-precision type, reductions and the loss in float32; the weights and the
optimizer state stay float32). ``fp16`` has 5 exponent bits, so small gradients underflow: it adds
a gradient scaler (``torch.amp.GradScaler``: multiply the loss by a large factor before backward,
unscale before clipping and stepping, skip a step whose gradients overflowed and halve the factor,
Micikevicius et al. 2018, "Mixed Precision Training"). ``bf16`` has float32's exponent range and
needs no scaler. ``fp32`` is the plain loop (the scaler is a pass-through when disabled).

``fp16`` is refused on the CPU (autocast there is slower than float32 and the point of a scaler is
the GPU's half-precision units): ``check_precision`` says so before a sweep writes anything.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sweeps.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(train_cfg: Mapping[str, Any]) -> None:
    """``train.precision``, ``train.compile`` and ``train.deterministic``; imports torch only for fp16 on ``device=auto``."""
    precision = train_cfg.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise ConfigError("train.precision", precision, "unknown precision", ", ".join(PRECISIONS))
    for key in ("compile", "deterministic"):
        value = train_cfg.get(key, False)
        if not isinstance(value, bool):
            raise ConfigError(f"train.{key}", value, "must be true or false")
    if precision == "fp16" and not _cuda_device(str(train_cfg.get("device", "auto"))):
        raise ConfigError(
            "train.precision", precision, "fp16 needs a CUDA device (train.device resolves to the CPU here)", "fp32 or bf16 on the CPU"
        )


def _cuda_device(device: str) -> bool:
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    import torch  # only on this path: a plain config check stays free of torch

    return torch.cuda.is_available()


class MixedPrecision:
    """Autocast and, for fp16, a gradient scaler, for one training run on one device.

    The step reads as the plain one: ``with p.autocast(): loss = ...``; ``p.scale(loss).backward()``;
    ``p.unscale_(optimizer)`` before clipping; ``p.step(optimizer)`` (step, then adapt the scale).
    """

    def __init__(self, name: str, device_type: str) -> None:
        import torch

        if name not in PRECISIONS:
            raise ConfigError("train.precision", name, "unknown precision", ", ".join(PRECISIONS))
        if name == "fp16" and device_type != "cuda":
            raise ConfigError("train.precision", name, f"fp16 needs a CUDA device, not {device_type}", "fp32 or bf16 on the CPU")
        self.name = name
        self.device_type = device_type
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        self.scaler = torch.amp.GradScaler(device_type if name == "fp16" else "cuda", enabled=name == "fp16")

    def autocast(self) -> AbstractContextManager:
        """The region that runs in low precision: forward pass and loss (never backward or step)."""
        if self.dtype is None:
            return nullcontext()
        import torch

        return torch.autocast(self.device_type, dtype=self.dtype)

    def scale(self, loss: Any) -> Any:
        return self.scaler.scale(loss)

    def unscale_(self, optimizer: Any) -> None:
        """Divide the gradients by the scale in place, so clipping sees their true norm."""
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: Any) -> None:
        """``optimizer.step()``, skipped by the scaler when fp16 gradients overflowed; then the scale adapts."""
        self.scaler.step(optimizer)
        self.scaler.update()

    def fresh(self) -> "MixedPrecision":
        """The same precision with its own scaler, for a side branch (rung cooldown) that must not move the trial's scale."""
        return MixedPrecision(self.name, self.device_type)


@functools.lru_cache(maxsize=None)
def plain(device_type: str) -> MixedPrecision:
    """float32 on ``device_type``: no autocast, a disabled (pass-through) scaler; shared, it holds no state."""
    return MixedPrecision("fp32", device_type)


def clip_gradients(precision: MixedPrecision, optimizer: Any, parameters: Iterable[Any], max_norm: float) -> None:
    """Clip the global gradient norm to ``max_norm``, on unscaled gradients."""
    import torch

    precision.unscale_(optimizer)  # no-op unless fp16: clip the true gradients, not the scaled ones
    torch.nn.utils.clip_grad_norm_(parameters, float(max_norm))
