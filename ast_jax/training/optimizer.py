"""The original AST optimiser in optax: torch-style Adam with L2 weight decay, a stepped warm-up and
a per-epoch step decay.

torch's ``Adam(betas=(0.95, 0.999), weight_decay=5e-7)`` adds the L2 term to the gradient *before*
the moment estimates (coupled, not AdamW's decoupled decay), i.e. ``add_decayed_weights`` ahead of
``scale_by_adam``. Learning rate: an optional stepped warm-up (``lr = floor(step / 50) * 50 / 1000 *
base`` for the first 1000 updates, as the original sets it every 50 steps) times a per-epoch step
decay (torch ``MultiStepLR`` with milestones ``range(start, 1000, every)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ast_jax.training.config import TrainConfig

__all__ = ["learning_rate_schedule", "make_optimizer", "schedule_warning"]


def learning_rate_schedule(config: TrainConfig, updates_per_epoch: int) -> optax.Schedule:
    """Learning rate as a function of the number of optimiser updates done.

    ``base * warmup(step) * decay ** (number of milestones <= epoch)``, with ``epoch = step //
    updates_per_epoch`` and milestones ``range(lr_decay_start, 1000, lr_decay_every)`` (torch's
    ``MultiStepLR`` stepped once per epoch; the original's milestone list ends at 1000).
    """
    if updates_per_epoch < 1:
        raise ValueError(f"updates_per_epoch must be >= 1, got {updates_per_epoch}")
    milestones = jnp.arange(config.lr_decay_start, 1000, config.lr_decay_every)

    def schedule(step: jax.Array) -> jax.Array:
        epoch = step // updates_per_epoch
        decay = config.lr_decay ** jnp.sum(milestones <= epoch)
        warm = 1.0
        if config.warmup_steps:
            stair = step // config.warmup_every * config.warmup_every
            warm = jnp.minimum(stair / config.warmup_steps, 1.0)
        return config.learning_rate * warm * decay

    return schedule


def schedule_warning(config: TrainConfig, total_updates: int) -> str | None:
    """Why the schedule would waste a run of ``total_updates`` updates, or None.

    The stepped warm-up holds the rate at 0 for the first ``warmup_every`` updates and reaches the
    base rate only after ``warmup_steps``: a short run (fine-tuning on a small dataset with the
    default recipe) may train at rate 0 throughout, or never leave the warm-up.
    """
    if not config.warmup_steps or config.learning_rate == 0:
        return None
    at_zero = min(config.warmup_every, total_updates)
    fix = (
        f"pass --warmup-steps N with N well below {total_updates} (and --warmup-every 1 for a "
        "smooth ramp), or --warmup-steps 0"
    )
    if at_zero == total_updates:
        return (
            f"the learning rate stays 0 for all {total_updates} updates of this run: the warm-up "
            f"holds it at 0 for the first {config.warmup_every} updates; {fix}"
        )
    if config.warmup_steps > total_updates:
        return (
            f"the warm-up ({config.warmup_steps} updates) is longer than this run "
            f"({total_updates} updates): the rate is 0 for the first {at_zero} updates and never "
            f"reaches {config.learning_rate:g}; {fix}"
        )
    return None


def make_optimizer(config: TrainConfig, updates_per_epoch: int) -> optax.GradientTransformation:
    """torch-style Adam with L2 weight decay and the recipe's schedule (see the module docstring),
    wrapped in ``optax.MultiSteps`` when accumulating gradients."""
    optimizer = optax.chain(
        # torch Adam's weight_decay: L2 on the gradient, before the moments (not AdamW).
        optax.add_decayed_weights(config.weight_decay),
        optax.scale_by_adam(b1=config.betas[0], b2=config.betas[1], eps=config.eps),
        optax.scale_by_learning_rate(learning_rate_schedule(config, updates_per_epoch)),
    )
    if config.accumulate > 1:
        optimizer = optax.MultiSteps(optimizer, every_k_schedule=config.accumulate)
    return optimizer
