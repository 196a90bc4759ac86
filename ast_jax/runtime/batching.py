"""How a jitted step meets a batch: one example at a time on a CPU, fixed-size padded batches.

Shape legend: B batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from numpy.typing import ArrayLike, NDArray

__all__ = ["in_padded_batches", "per_example", "prefers_per_example"]


def per_example(step: Callable[[Any, jax.Array], Any]) -> Callable[[Any, jax.Array], Any]:
    """``step(params, x)`` over a batch ``x`` ``(B, ...)`` one example at a time (`jax.lax.map`),
    with the same outputs (leading axis B).

    The fast form on a CPU: XLA:CPU's matmuls slow down once a batch stacks thousands of token
    rows (full-size AST at batch 8: 642 instead of 863 ms per clip). Keep batched steps on
    accelerators and for batches split over several devices (the loop would gather them).
    """

    def mapped(params: Any, x: jax.Array) -> Any:
        out = jax.lax.map(lambda example: step(params, example[None]), x)  # leaves (B, 1, ...)
        return jax.tree.map(lambda leaf: leaf[:, 0], out)

    return mapped


def prefers_per_example(mesh: Mesh) -> bool:
    """Whether batches on ``mesh`` run faster through `per_example`: one CPU device."""
    return mesh.size == 1 and mesh.devices.flat[0].platform == "cpu"


def in_padded_batches(
    function: Callable[[NDArray], ArrayLike], inputs: NDArray, batch_size: int
) -> NDArray:
    """``function`` over ``inputs`` ``(B, ...)`` in batches of exactly ``batch_size`` rows.

    The last batch is padded with zero rows, so a jitted ``function`` compiles once; the outputs
    of the padding rows are dropped and the rest concatenated along the batch axis.
    """
    outputs = []
    for start in range(0, max(len(inputs), 1), batch_size):
        chunk = inputs[start : start + batch_size]
        padded = np.zeros((batch_size, *inputs.shape[1:]), inputs.dtype)
        padded[: len(chunk)] = chunk
        outputs.append(np.asarray(function(padded))[: len(chunk)])
    return np.concatenate(outputs)
