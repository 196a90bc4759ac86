"""A tiny randomly initialised AST classifier saved as an ast-jax checkpoint, for pipeline tests.

128 mel bins and 16 kHz so the real feature extractor applies; 128 frames (1.28 s windows) and two
32-wide layers so that a forward pass costs almost nothing.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from ast_jax import ASTConfig, ASTForAudioClassification, FeatureExtractor, save_pretrained

CONFIG = ASTConfig(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_length=128,
    num_mel_bins=128,
    labels=("alpha", "beta", "gamma", "delta", "epsilon"),
)
EXTRACTOR = FeatureExtractor.from_preset("speech_commands")  # 128 frames, 128 bins
# Smaller still, for model and checkpoint tests that need no feature extractor.
SMALL = ASTConfig(
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=24,
    max_length=40,
    num_mel_bins=20,
    labels=("a", "b", "c"),
)
RATE = 16000


def tiny_params(seed: int = 0, config: ASTConfig = CONFIG) -> dict:
    x = np.zeros((1, config.max_length, config.num_mel_bins), np.float32)
    return ASTForAudioClassification(config).init(jax.random.key(seed), x)["params"]


def save_tiny(directory: Path) -> Path:
    """Writes the tiny checkpoint (config, params, preprocessor config) to ``directory``."""
    return save_pretrained(directory, CONFIG, tiny_params(), feature_extractor=EXTRACTOR)


def tone(frequency: float, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
