"""Export for serving: a classifier as one artifact from waveforms (or features) to logits.

``export_model`` writes ``model.stablehlo`` (`jax.export`, for cpu, cuda and tpu at once;
`ast_jax.export.stablehlo`) or ``model.onnx`` (jax2onnx, for onnxruntime; `ast_jax.export.onnx`)
with a ``metadata.json``; `ast_jax.export.serving` defines what both compute. Neither artifact
needs ast_jax (or Flax) to run. Imports config, frontend, model and checkpoints; the command line
imports it.
"""

from __future__ import annotations

from ast_jax.exports import lazy_getattr

_EXPORTS = {
    "export_model": "ast_jax.export.artifact",
    "export_onnx": "ast_jax.export.onnx",
    "export_stablehlo": "ast_jax.export.stablehlo",
    "serving_function": "ast_jax.export.serving",
}

__all__ = ["export_model", "export_onnx", "export_stablehlo", "serving_function"]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
