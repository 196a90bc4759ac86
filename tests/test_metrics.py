"""Metrics against hand-computed cases (and scikit-learn's definitions)."""

import math

import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics

from ast_jax.training.metrics import accuracy, average_precision, d_prime, evaluate, roc_auc

# Hand-computed values are exact fractions; float64 arithmetic leaves only rounding.
EXACT = 1e-12


def test_accuracy():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    targets = np.array([[1, 0], [1, 0], [1, 0]])
    assert accuracy(scores, targets) == pytest.approx(2 / 3, abs=EXACT)


def test_average_precision_hand_computed():
    # Ranked: + (P 1/1), - , + (P 2/3), - : AP = (1 + 2/3) / 2.
    scores = np.array([[0.9], [0.8], [0.7], [0.1]])
    targets = np.array([[1], [0], [1], [0]])
    assert average_precision(scores, targets)[0] == pytest.approx(5 / 6, abs=EXACT)


def test_average_precision_ties_take_the_whole_group():
    # The top two tie: one threshold takes both (precision 1/2, recall 1/2), then the third
    # (precision 2/3, recall 1): AP = 1/2 * 1/2 + 1/2 * 2/3 (scikit-learn's value).
    scores = np.array([[0.5], [0.5], [0.3]])
    targets = np.array([[0], [1], [1]])
    assert average_precision(scores, targets)[0] == pytest.approx(7 / 12, abs=EXACT)


def test_roc_auc_hand_computed_with_ties():
    # Positives 0.9, 0.5; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.5=0.5, 0.5>0.1) = 3.5/4.
    scores = np.array([[0.9], [0.5], [0.5], [0.1]])
    targets = np.array([[1], [1], [0], [0]])
    assert roc_auc(scores, targets)[0] == pytest.approx(0.875, abs=EXACT)


def test_classes_without_positives_are_left_out():
    scores = np.array([[0.9, 0.2], [0.1, 0.3]])
    targets = np.array([[1, 0], [0, 0]])
    assert math.isnan(average_precision(scores, targets)[1])
    assert math.isnan(roc_auc(scores, targets)[1])
    result = evaluate(scores, targets)
    assert result["mAP"] == pytest.approx(1.0) and result["mAUC"] == pytest.approx(1.0)


def test_d_prime():
    assert d_prime(0.5) == pytest.approx(0.0, abs=EXACT)
    # Phi^-1(0.8413447460685429) = 1 (the normal CDF at 1).
    assert d_prime(0.8413447460685429) == pytest.approx(math.sqrt(2), abs=1e-9)


def test_against_sklearn_definitions_on_random_data():
    rng = np.random.default_rng(0)
    targets = (rng.random((200, 5)) < 0.3).astype(float)
    scores = np.round(rng.random((200, 5)) + targets * 0.3, 2)  # rounding makes ties
    np.testing.assert_allclose(
        average_precision(scores, targets),
        [sklearn_metrics.average_precision_score(targets[:, c], scores[:, c]) for c in range(5)],
        atol=1e-12,
    )
    np.testing.assert_allclose(
        roc_auc(scores, targets),
        [sklearn_metrics.roc_auc_score(targets[:, c], scores[:, c]) for c in range(5)],
        atol=1e-12,
    )


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        evaluate(np.zeros((3, 2)), np.zeros((3, 3)))
