"""A tiny AST and a synthetic, learnable 3-class task for the training tests.

Each class is a band of raised log-mel energy (bins by class) at a random time position over a
noise floor, so a 1-layer model learns it in a few epochs.
"""

import dataclasses

import numpy as np

from ast_jax.config import ASTConfig
from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.model.params import init_params as random_params

LABELS = ("low", "mid", "high")
TINY = ASTConfig(
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
    patch_size=8,
    frequency_stride=8,
    time_stride=8,
    max_length=32,
    num_mel_bins=24,
    labels=LABELS,
    problem_type="single_label_classification",
    # Wider than HF's 0.02: with tiny weights the residual branches start near a saddle and a
    # model this small idles for tens of steps before it learns; the test wants a short run.
    initializer_range=0.1,
)
# The data's statistics: SpecAugment's masks (log-mel 0.0) then look like ordinary cells.
EXTRACTOR = FeatureExtractor(max_length=32, num_mel_bins=24, mean=0.5, std=1.5)


def synthetic(num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(num, 32, 24)`` unnormalised log-mel features and ``(num, 3)`` one-hot targets."""
    rng = np.random.default_rng(seed)
    classes = np.arange(num) % len(LABELS)
    features = rng.normal(0.0, 1.0, (num, 32, 24)).astype(np.float32)
    for row, label in enumerate(classes):
        start = rng.integers(0, 20)
        features[row, start : start + 10, 8 * label : 8 * label + 8] += 5.0
    return features, np.eye(len(LABELS), dtype=np.float32)[classes]


def init_params(config: ASTConfig = TINY, seed: int = 0) -> dict:
    return random_params(config, seed, scratch=True)


def with_labels(config: ASTConfig, labels: tuple[str, ...]) -> ASTConfig:
    return dataclasses.replace(config, labels=labels)
