"""Training hyper-parameters and the original AST recipes.

Defaults are the original's optimiser, warm-up and decay, and the original README's SpecAugment
advice for new data. `RECIPES` holds the settings of the original training scripts for AudioSet
(full and balanced), ESC-50 and Speech Commands.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["RECIPES", "TrainConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training hyper-parameters. Defaults: the original's optimiser, warm-up and decay, and the
    original README's SpecAugment advice for new data (48 of 128 mel bins, 20% of the frames).

    Attributes:
      epochs: passes over the training set.
      batch_size: examples per micro-batch (per train-step call), over all devices.
      accumulate: micro-batches per optimiser update (gradient accumulation; the gradients are
        averaged), so the effective batch is ``batch_size * accumulate``.
      learning_rate: base learning rate.
      betas: Adam's ``(b1, b2)``.
      eps: Adam's epsilon (torch's default).
      weight_decay: torch-Adam L2 coefficient (added to the gradient).
      warmup_steps: updates of linear warm-up (0 disables).
      warmup_every: the warm-up changes the rate every this many updates (the original: 50).
      lr_decay_start: first epoch (0-based count of finished epochs) at which the rate decays.
      lr_decay_every: epochs between decays.
      lr_decay: decay factor (1.0 disables).
      freqm: SpecAugment frequency mask parameter; None is 3/8 of the mel bins (48 of 128; 0
        disables).
      timem: SpecAugment time mask parameter; None is 20% of ``max_length`` (0 disables).
      mixup: probability of mixing each example with a random partner (0 disables).
      noise: scale of the Speech Commands noise (the original: 0.1; 0 disables).
      time_shift: maximum circular time shift in frames (the original: 10 with noise; 0 disables).
      freq_warp: maximum frequency warp (`ast_jax.training.augment.warp_frequency`: each example's
        frequency axis scaled by a factor in ``[1 - freq_warp, 1 + freq_warp)``, before
        SpecAugment); not in the original; 0 disables.
      seed: seeds init of new heads, shuffling, augmentation and dropout.
      weight_average: ``(first, last)`` epochs (1-based, inclusive) whose weights are averaged into
        the final "weight-averaged" model, or None. Epochs past ``epochs`` are ignored, so a run
        can stop early and resume with more epochs.
      eval_batch_size: batch size for evaluation.
    """

    epochs: int = 10
    batch_size: int = 32
    accumulate: int = 1
    learning_rate: float = 1e-5
    betas: tuple[float, float] = (0.95, 0.999)
    eps: float = 1e-8
    weight_decay: float = 5e-7
    warmup_steps: int = 1000
    warmup_every: int = 50
    lr_decay_start: int = 5
    lr_decay_every: int = 1
    lr_decay: float = 0.85
    freqm: int | None = None
    timem: int | None = None
    mixup: float = 0.0
    noise: float = 0.0
    time_shift: int = 0
    freq_warp: float = 0.0
    seed: int = 0
    weight_average: tuple[int, int] | None = None
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.weight_average is not None:
            object.__setattr__(self, "weight_average", tuple(self.weight_average))
        for name in ("epochs", "batch_size", "accumulate", "lr_decay_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "time_shift", "lr_decay_start"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.warmup_every < 1:
            raise ValueError(f"warmup_every must be >= 1, got {self.warmup_every}")
        for name in ("freqm", "timem"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.mixup <= 1.0:
            raise ValueError(f"mixup must be in [0, 1], got {self.mixup}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if not 0.0 <= self.freq_warp < 1.0:
            raise ValueError(f"freq_warp must be in [0, 1), got {self.freq_warp}")
        if self.weight_average is not None:
            first, last = self.weight_average
            if not 1 <= first <= last:
                raise ValueError(
                    f"weight_average must be (first, last) epochs with 1 <= first <= last, got "
                    f"{self.weight_average}"
                )

    def freq_mask(self, num_mel_bins: int) -> int:
        """The frequency mask parameter for ``num_mel_bins`` bins."""
        return round(0.375 * num_mel_bins) if self.freqm is None else self.freqm

    def time_mask(self, max_length: int) -> int:
        """The time mask parameter for ``max_length`` frames."""
        return round(0.2 * max_length) if self.timem is None else self.timem

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The original recipes' settings (docs/training.md, Original recipes), to pass as
# `TrainConfig(**RECIPES[name])`.
RECIPES: dict[str, dict[str, Any]] = {
    "audioset": dict(
        batch_size=12, learning_rate=1e-5, epochs=5, freqm=48, timem=192, mixup=0.5,
        lr_decay_start=2, lr_decay=0.5, weight_average=(1, 5),
    ),
    "audioset_balanced": dict(
        batch_size=12, learning_rate=5e-5, epochs=25, freqm=48, timem=192, mixup=0.5,
        lr_decay_start=10, lr_decay_every=5, lr_decay=0.5, weight_average=(6, 25),
    ),
    "esc50": dict(
        batch_size=48, learning_rate=1e-5, epochs=25, freqm=24, timem=96, mixup=0.0,
        lr_decay_start=5, lr_decay=0.85, warmup_steps=0,
    ),
    "speech_commands": dict(
        batch_size=128, learning_rate=2.5e-4, epochs=30, freqm=48, timem=48, mixup=0.6,
        lr_decay_start=5, lr_decay=0.85, warmup_steps=0, noise=0.1, time_shift=10,
    ),
}  # fmt: skip
