"""Evaluation metrics AST reports, in NumPy: accuracy, mAP, mean AUC and d'.

Per-class average precision and ROC AUC follow scikit-learn's ``average_precision_score`` (step
interpolation over distinct thresholds, no trapezoid) and ``roc_auc_score`` (ties count half). A
class with no positive (or no negative) example has no AP (AUC) and is left out of the means, which
are NaN only when every class is left out. ``d' = sqrt(2) * Phi^-1(AUC)`` as the original. See
docs/training.md, Evaluation metrics.

Shape legend: B examples, C classes.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special
import scipy.stats
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "accuracy",
    "average_precision",
    "d_prime",
    "evaluate",
    "roc_auc",
]


def _check_pair(scores: ArrayLike, targets: ArrayLike) -> tuple[NDArray, NDArray]:
    scores, targets = np.asarray(scores, np.float64), np.asarray(targets, np.float64)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(
            f"scores and targets must both be (B, C), got {scores.shape} and {targets.shape}"
        )
    return scores, targets


def accuracy(scores: ArrayLike, targets: ArrayLike) -> float:
    """Share of examples whose top-scoring class is the target's top class (the original's
    ``argmax`` agreement; with soft or multi-hot targets, ties go to the lowest index)."""
    scores, targets = _check_pair(scores, targets)
    return float(np.mean(scores.argmax(-1) == targets.argmax(-1)))


def average_precision(scores: ArrayLike, targets: ArrayLike) -> NDArray[np.float64]:
    """Per-class AP ``sum_n (R_n - R_{n-1}) P_n`` over distinct score thresholds, high to low.

    Args:
      scores: ``(B, C)`` scores (any monotone function of the logits).
      targets: ``(B, C)`` targets; > 0.5 is positive.

    Returns:
      ``(C,)`` float64, NaN for classes without positives.
    """
    scores, targets = _check_pair(scores, targets)
    return np.array([_binary_ap(s, t > 0.5) for s, t in zip(scores.T, targets.T, strict=True)])


def _binary_ap(score: NDArray, positive: NDArray[np.bool_]) -> float:
    if not positive.any():
        return math.nan
    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order]
    # The last index of each run of equal scores: a threshold takes a whole tie group.
    last = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    true_positives = np.cumsum(positive)[last]
    precision = true_positives / (last + 1)
    recall = true_positives / positive.sum()
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def roc_auc(scores: ArrayLike, targets: ArrayLike) -> NDArray[np.float64]:
    """Per-class ROC AUC = P(score of a positive > score of a negative) + 0.5 P(tie).

    Computed from average ranks (Mann-Whitney U): ``(sum of positive ranks - P(P+1)/2) / (P N)``.

    Args:
      scores: ``(B, C)``.
      targets: ``(B, C)``; > 0.5 is positive.

    Returns:
      ``(C,)`` float64, NaN for classes without positives or without negatives.
    """
    scores, targets = _check_pair(scores, targets)
    positive = targets > 0.5  # (B, C)
    ranks = scipy.stats.rankdata(scores, axis=0)  # (B, C), ties share their average rank
    num_pos = positive.sum(0)  # (C,)
    num_neg = positive.shape[0] - num_pos
    u = (ranks * positive).sum(0) - num_pos * (num_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((num_pos > 0) & (num_neg > 0), u / (num_pos * num_neg), math.nan)


def d_prime(auc: ArrayLike) -> NDArray[np.float64]:
    """Sensitivity index ``sqrt(2) * Phi^-1(auc)`` (``Phi^-1`` the standard normal quantile)."""
    return math.sqrt(2.0) * scipy.special.ndtri(np.asarray(auc, np.float64))


def _nanmean(values: NDArray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else math.nan


def evaluate(scores: ArrayLike, targets: ArrayLike) -> dict[str, float]:
    """``{"accuracy", "mAP", "mAUC", "d_prime"}`` of ``(B, C)`` scores against targets.

    ``d_prime`` is that of the mean AUC, as the original reports it.
    """
    auc = _nanmean(roc_auc(scores, targets))
    return {
        "accuracy": accuracy(scores, targets),
        "mAP": _nanmean(average_precision(scores, targets)),
        "mAUC": auc,
        "d_prime": float(d_prime(auc)),
    }
