"""Waveforms to logits as one function: the JAX front end feeding the model, for one XLA program.

Shape legend: B batch, S samples, T frames, F mel bins, C classes.
"""

from __future__ import annotations

import jax

from ast_jax.config import ASTConfig
from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.frontend.jax_fbank import extract_features
from ast_jax.model.modules import ASTForAudioClassification

__all__ = ["logits_from_waveforms"]


def logits_from_waveforms(
    params: dict,
    waveforms: jax.Array,
    config: ASTConfig,
    extractor: FeatureExtractor,
    *,
    lengths: jax.Array | None = None,
) -> jax.Array:
    """Waveforms ``(B, S)`` -> logits ``(B, C)``: features and model as one program.

    Jit it with the configs static, e.g.
    ``jax.jit(logits_from_waveforms, static_argnames=("config", "extractor"))``; on an accelerator
    the waveforms are the only host-to-device transfer. ``lengths`` ``(B,)``: the samples of each
    row that are audio, for clips padded to a common length (`extract_features`).
    """
    if (extractor.max_length, extractor.num_mel_bins) != (config.max_length, config.num_mel_bins):
        raise ValueError(
            f"extractor gives ({extractor.max_length}, {extractor.num_mel_bins}) features, the "
            f"model takes ({config.max_length}, {config.num_mel_bins})"
        )
    features = extract_features(waveforms, extractor, lengths=lengths)  # (B, T, F)
    return ASTForAudioClassification(config).apply({"params": params}, features).logits
