"""What inference returns per input: scores, embeddings, or the failure that stopped it.

Shape legend: K windows of one input, C classes, N tokens, L layers, D hidden.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ["AGGREGATES", "Aggregate", "Classification", "Embedding", "Failure", "raise_failure"]

# How window scores become clip scores.
Aggregate = Literal["mean", "max"]
AGGREGATES: tuple[str, ...] = ("mean", "max")


@dataclasses.dataclass(frozen=True)
class Classification:
    """Scores of one input.

    Attributes:
      source: the file path, or ``"array[i]"`` for the i-th in-memory input.
      labels: C class names.
      scores: ``(C,)`` clip scores, the aggregate of ``window_scores``.
      window_scores: ``(K, C)`` scores of each window.
      window_times: ``(K, 2)`` start and end of each window in seconds.
      duration: length of the input in seconds.
    """

    source: str
    labels: tuple[str, ...]
    scores: NDArray[np.float32]
    window_scores: NDArray[np.float32]
    window_times: NDArray[np.float64]
    duration: float

    def top_k(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` best ``(label, score)`` pairs of the clip, best first."""
        return _top_k(self.scores, self.labels, k)

    def window_top_k(self, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` best ``(label, score)`` pairs of each window."""
        return [_top_k(row, self.labels, k) for row in self.window_scores]


@dataclasses.dataclass(frozen=True)
class Embedding:
    """Embeddings of one input.

    Attributes:
      source: the file path, or ``"array[i]"``.
      pooled: ``(D,)`` mean over windows of ``window_pooled``.
      window_pooled: ``(K, D)`` the backbone's pooled output (mean of the normalised cls and
        distillation tokens) per window.
      window_times: ``(K, 2)`` start and end of each window in seconds.
      duration: length of the input in seconds.
      last_hidden_state: ``(K, N, D)`` per-token output of each window, if requested.
      hidden_states: ``(K, L + 1, N, D)`` embeddings output and every layer's output (before the
        final LayerNorm), if requested.
    """

    source: str
    pooled: NDArray[np.float32]
    window_pooled: NDArray[np.float32]
    window_times: NDArray[np.float64]
    duration: float
    last_hidden_state: NDArray[np.float32] | None = None
    hidden_states: NDArray[np.float32] | None = None


@dataclasses.dataclass(frozen=True)
class Failure:
    """An input that could not be processed: ``error`` says why."""

    source: str
    error: Exception


def _top_k(scores: NDArray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [(labels[i], float(scores[i])) for i in order]


def raise_failure(result: Any) -> Any:
    """``result`` itself, or the error of a `Failure`, raised."""
    if isinstance(result, Failure):
        raise result.error
    return result
