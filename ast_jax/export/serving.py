"""What an exported artifact computes: one function from waveforms (or features) to logits, with
the parameters baked in, and the shapes of its inputs.

Two inputs (``input="waveform"``, the default):

* ``waveforms`` ``(B, num_samples)`` float32, one analysis window per row at the model's sampling
  rate, ``num_samples = extractor.samples_needed`` (the samples ``max_length`` frames span);
* ``lengths`` ``(B,)`` int32, how many samples of each row are audio. A shorter clip is padded
  (with anything; zeros are usual) and gets exactly the features the feature extractor gives the
  clip itself: frames past its end become the extractor's padding rows.

One input (``input="features"``): ``features`` ``(B, max_length, num_mel_bins)`` float32, the
normalised log-mel features `FeatureExtractor` returns. The output is ``logits`` ``(B, C)``
float32 either way; B is symbolic (any batch size).

Shape legend: B batch, S samples, T frames (``max_length``), F mel bins, C classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp

from ast_jax.config import ASTConfig
from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.frontend.jax_fbank import extract_features
from ast_jax.model.modules import ASTForAudioClassification

__all__ = ["BATCH", "INPUTS", "input_shapes", "serving_function", "with_attention"]

Input = Literal["waveform", "features"]
INPUTS: tuple[str, ...] = ("waveform", "features")
BATCH = "batch"  # the name of the symbolic batch dimension in every artifact


def _check(config: ASTConfig, extractor: FeatureExtractor, input: str) -> None:
    if input not in INPUTS:
        raise ValueError(f"input must be one of {INPUTS}, got {input!r}")
    if config.num_labels == 0:
        raise ValueError("the model has no classifier head (num_labels == 0): nothing to export")
    if (extractor.max_length, extractor.num_mel_bins) != (config.max_length, config.num_mel_bins):
        raise ValueError(
            f"extractor gives ({extractor.max_length}, {extractor.num_mel_bins}) features, the "
            f"model takes ({config.max_length}, {config.num_mel_bins})"
        )


def input_shapes(
    config: ASTConfig, extractor: FeatureExtractor, input: Input = "waveform"
) -> dict[str, tuple[tuple[str | int, ...], str]]:
    """Name -> (shape, with `BATCH` for the batch dimension; dtype) of each input, in order."""
    _check(config, extractor, input)
    if input == "waveform":
        return {
            "waveforms": ((BATCH, extractor.samples_needed), "float32"),
            "lengths": ((BATCH,), "int32"),
        }
    return {"features": ((BATCH, config.max_length, config.num_mel_bins), "float32")}


def serving_function(
    config: ASTConfig,
    params: Mapping[str, Any],
    extractor: FeatureExtractor,
    *,
    input: Input = "waveform",
    dft: Literal["fft", "matmul"] = "fft",
) -> Callable[..., jax.Array]:
    """The artifact's function, params closed over (baked in as constants when it is lowered).

    Args:
      config: the model config; its ``attention`` and ``dtype`` are used as they are (``"auto"``
        stays a per-platform choice, `ast_jax.model.attention.attention_kernel`).
      params: the `ASTForAudioClassification` params.
      extractor: the feature extractor whose pipeline the waveform input goes through.
      input: ``"waveform"``: ``f(waveforms, lengths)``; ``"features"``: ``f(features)``.
      dft: the spectrum's DFT (`ast_jax.frontend.jax_fbank.fbank`).

    Returns:
      A function of JAX arrays returning ``(B, C)`` float32 logits.
    """
    _check(config, extractor, input)
    model = ASTForAudioClassification(config)

    def from_features(features: jax.Array) -> jax.Array:
        return model.apply({"params": params}, features).logits.astype(jnp.float32)

    if input == "features":
        return from_features

    def from_waveforms(waveforms: jax.Array, lengths: jax.Array) -> jax.Array:
        features = extract_features(waveforms, extractor, lengths=lengths, dft=dft)
        return from_features(features)

    return from_waveforms


def with_attention(config: ASTConfig, attention: str | None) -> ASTConfig:
    """``config`` with ``attention`` replaced when given."""
    return config if attention is None else dataclasses.replace(config, attention=attention)
