"""`export_model`: a checkpoint to a serving artifact directory, ``model.stablehlo`` or
``model.onnx`` beside ``metadata.json``.

``metadata.json`` says everything a server needs without ast_jax: the format and file, the inputs
and output (names, shapes with ``"batch"`` for the batch dimension, dtypes), the sampling rate and
window (``num_samples``, and ``hop_samples``, the hop ``ast-jax classify`` uses by default), the
frame length and shift in samples, the labels in logit order, the score function (``sigmoid``,
``softmax`` or ``none``), the platforms, the compute dtype (and, for StableHLO, the matmul
precision), the attention kernel per platform, the versions of ast-jax and of JAX (StableHLO) or
the ONNX opset, and the artifact's size and SHA-256.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from collections.abc import Sequence
from typing import Any, Literal

from ast_jax.checkpoints.sources import load_model, resolve_model
from ast_jax.config import ASTConfig
from ast_jax.export.serving import Input, input_shapes, with_attention
from ast_jax.export.stablehlo import DEFAULT_PLATFORMS, attention_by_platform, check_platforms
from ast_jax.files import atomic_directory, write_json
from ast_jax.frontend.extractor import FeatureExtractor, default_extractor
from ast_jax.model.params import has_head
from ast_jax.model.scores import default_activation

__all__ = ["ARTIFACT_NAMES", "FORMATS", "METADATA_NAME", "export_model", "metadata"]

FORMATS = ("stablehlo", "onnx")
ARTIFACT_NAMES = {"stablehlo": "model.stablehlo", "onnx": "model.onnx"}
METADATA_NAME = "metadata.json"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def metadata(
    config: ASTConfig,
    extractor: FeatureExtractor,
    *,
    format: Literal["stablehlo", "onnx"],
    input: Input,
    platforms: Sequence[str],
) -> dict[str, Any]:
    """The ``metadata.json`` contents of an artifact (without its size and digest)."""
    if format == "onnx":
        from ast_jax.export.onnx import OPSET, onnx_config

        attention = {"onnxruntime": onnx_config(config).attention}
        extra: dict[str, Any] = {"onnx_opset": OPSET}
    else:
        attention = attention_by_platform(config, platforms)
        extra = {
            "matmul_precision": "highest" if config.dtype == "float32" else "default",
            "jax_version": _version("jax"),
        }
    shapes = input_shapes(config, extractor, input)
    options = extractor.fbank_options
    return {
        "format": format,
        "file": ARTIFACT_NAMES[format],
        "input": input,
        "inputs": [
            {"name": name, "shape": list(shape), "dtype": dtype}
            for name, (shape, dtype) in shapes.items()
        ],
        "outputs": [{"name": "logits", "shape": ["batch", config.num_labels], "dtype": "float32"}],
        "sampling_rate": extractor.sampling_rate,
        "num_samples": extractor.samples_needed,
        "hop_samples": extractor.max_length * options.window_shift,
        "frame_length_samples": options.window_size,
        "frame_shift_samples": options.window_shift,
        "max_length": config.max_length,
        "num_mel_bins": config.num_mel_bins,
        "labels": list(config.labels),
        "score": default_activation(config),
        "platforms": list(platforms) if format == "stablehlo" else ["onnxruntime"],
        "dtype": config.dtype,
        "attention": attention,
        "ast_jax_version": _version("ast-jax"),
        **extra,
    }


def export_model(
    model: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    format: Literal["stablehlo", "onnx"] = "stablehlo",
    input: Input = "waveform",
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
    dtype: str | None = None,
    attention: str | None = None,
) -> dict[str, Any]:
    """Exports a checkpoint's classifier for serving; writes ``output/model.stablehlo`` or
    ``output/model.onnx`` and ``output/metadata.json``.

    Args:
      model: a checkpoint directory (ast-jax or Hugging Face), a hub id or a bundled model's
        name; None for the bundled kws12.
      output: the directory to write, as a whole (`ast_jax.files.atomic_directory`); an
        existing artifact there is replaced, a directory of other files refused.
      format: ``"stablehlo"`` (`ast_jax.export.stablehlo`) or ``"onnx"`` (`ast_jax.export.onnx`).
      input: ``"waveform"`` (waveforms and their lengths; features computed inside) or
        ``"features"`` (normalised log-mel features).
      platforms: StableHLO only: any of ``"cpu"``, ``"cuda"``, ``"rocm"``, ``"tpu"``.
      dtype: compute dtype (``"float32"``, ``"bfloat16"``, ``"float16"``); None for the
        checkpoint's default, float32.
      attention: an attention kernel to use instead of the config's (``"auto"`` by default).

    Returns:
      The metadata written.

    Raises:
      ValueError: an unknown format, input or platform, a model without a classifier head, a
        kernel or dtype the format cannot run.
      ImportError: ONNX without jax2onnx.
      RuntimeError: cuDNN attention on a host without a CUDA GPU.
      OSError, FileNotFoundError: the model cannot be read or the output written.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    config, params, extractor = load_model(resolve_model(model), dtype=dtype)
    config = with_attention(config, attention)
    if not has_head(params):
        raise ValueError(f"{model} has no classifier head: nothing to export")
    extractor = default_extractor(config) if extractor is None else extractor
    platforms = check_platforms(platforms, config) if format == "stablehlo" else ()
    info = metadata(config, extractor, format=format, input=input, platforms=platforms)
    if format == "stablehlo":
        from ast_jax.export.stablehlo import export_stablehlo

        exported = export_stablehlo(config, params, extractor, input=input, platforms=platforms)
        data = exported.serialize()
    else:
        from ast_jax.export.onnx import export_onnx

        data = export_onnx(config, params, extractor, input=input).SerializeToString()
    info = {**info, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    artifact_files = {*ARTIFACT_NAMES.values(), METADATA_NAME}
    with atomic_directory(output, replaceable=artifact_files) as temp:
        (temp / ARTIFACT_NAMES[format]).write_bytes(data)
        write_json(temp / METADATA_NAME, info)
    return info
