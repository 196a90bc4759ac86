"""What a MODEL argument names: a bundled model, a checkpoint directory, a hub id or an original
`.pth` file, and the config, params and feature extractor it loads to.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from ast_jax.checkpoints.bundled import BUNDLED_MODELS, bundled_model_path
from ast_jax.checkpoints.original import load_original
from ast_jax.checkpoints.pretrained import load_feature_extractor, load_pretrained
from ast_jax.config import ASTConfig
from ast_jax.frontend.extractor import FeatureExtractor

__all__ = ["load_model", "load_source", "resolve_model"]


def resolve_model(model: str | os.PathLike | None) -> str | os.PathLike:
    """``model``; a bundled model's name gives its directory, and None the default bundled model
    (`ast_jax.checkpoints.bundled`)."""
    if model is None:
        return bundled_model_path()
    if str(model) in BUNDLED_MODELS:
        return bundled_model_path(str(model))
    return model


def load_model(
    path_or_repo_id: str | os.PathLike, *, dtype: str | None = None
) -> tuple[ASTConfig, Any, FeatureExtractor | None]:
    """A checkpoint's config, params and feature extractor (None, with a warning, if it has none),
    for inference: strict where `load_pretrained` follows transformers' lenient loading.

    Args:
      path_or_repo_id: an ast-jax or Hugging Face directory, or a hub id.
      dtype: compute dtype (``"float32"``, ``"bfloat16"``, ``"float16"``); None for float32.

    Raises:
      ValueError: the checkpoint lacks weights its own model needs (a truncated or partial
        checkpoint would otherwise run with random weights and give wrong scores).
      The errors of `load_pretrained`.
    """
    config, params, info = load_pretrained(
        path_or_repo_id, output_loading_info=True, **({"dtype": dtype} if dtype else {})
    )
    missing = info["missing_keys"]
    if missing:
        raise ValueError(
            f"{path_or_repo_id}: the checkpoint lacks {len(missing)} weight(s) its model needs "
            f"({', '.join(map(str, missing[:3]))}{', ...' if len(missing) > 3 else ''}); it is "
            "incomplete, and its scores would come from random weights"
        )
    try:
        extractor = load_feature_extractor(path_or_repo_id)
    except FileNotFoundError:
        warnings.warn(
            f"{path_or_repo_id} has no preprocessor_config.json; using AST's AudioSet "
            "normalisation statistics",
            stacklevel=2,
        )
        extractor = None
    return config, params, extractor


def load_source(
    source: str | os.PathLike[str],
    *,
    strides: tuple[int, int] | None = None,
    **original_options: Any,
) -> tuple[ASTConfig, dict[str, Any]]:
    """What `ast-jax convert` reads: an original `.pth` file (`load_original`), else a directory
    or hub id (`load_pretrained`).

    Args:
        source: a `.pth` file, an ast-jax or Hugging Face directory, or a hub id.
        strides: `(frequency, time)` strides of a `.pth` (default: from its file name).
        **original_options: further `original_config` arguments, used for `.pth` files only.
    """
    if not Path(source).is_file():
        return load_pretrained(source)
    frequency_stride, time_stride = strides or (None, None)
    return load_original(
        source, frequency_stride=frequency_stride, time_stride=time_stride, **original_options
    )
