"""The order of training examples: one epoch's batches, drawn from ``(seed, epoch)`` alone.

Shape legend: B examples, C classes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["balanced_weights", "epoch_order"]


def balanced_weights(targets: NDArray[np.floating]) -> NDArray[np.float64]:
    """Per-example sampling weights of the original AudioSet recipe: the sum over an example's
    labels of ``1000 / (count of that label + 0.01)``, normalised to sum 1. ``(B, C)`` -> ``(B,)``.

    Rare labels are drawn more often; an example without labels is never drawn.
    """
    counts = (targets > 0).sum(axis=0)  # (C,)
    weights = ((targets > 0) * (1000.0 / (counts + 0.01))).sum(axis=1)  # (B,)
    if not weights.sum() > 0:
        raise ValueError("balanced sampling needs examples with at least one label")
    return weights / weights.sum()


def epoch_order(
    num_examples: int,
    batch_size: int,
    seed: int,
    epoch: int,
    weights: NDArray[np.float64] | None = None,
) -> NDArray[np.intp]:
    """``(steps, batch_size)`` example indices of one epoch, the incomplete last batch dropped.

    A permutation (or, with ``weights``, ``num_examples`` weighted draws with replacement),
    deterministic in ``(seed, epoch)``.

    Raises:
      ValueError: fewer examples than one batch.
    """
    steps = num_examples // batch_size
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the {num_examples} examples")
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        order = rng.permutation(num_examples)
    else:
        order = rng.choice(num_examples, size=num_examples, replace=True, p=weights)
    return order[: steps * batch_size].reshape(steps, batch_size)
