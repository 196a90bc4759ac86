"""Checkpoint directories: ast-jax's own format and Hugging Face's, read and written.

An ast-jax directory holds `config.json` (Hugging Face format) and `ast_jax.safetensors`: the Flax
params flattened to '/'-joined paths (e.g. `backbone/layer_0/attention/qkv/kernel`), float32, with
metadata `{"format": "ast-jax", "version": "1"}`. The name cannot be mistaken for HF's
`model.safetensors`, whose tensors are in PyTorch layout. Every file is written with
`ast_jax.files.atomic_write`, so a crash never leaves a partial file.

A Hugging Face directory holds `config.json` and `model.safetensors` (read with safetensors' NumPy
API) or `pytorch_model.bin` (read with `torch.load(weights_only=True)` when torch is installed, else
with the restricted reader in `ast_jax.checkpoints.torch_pickle`; neither runs code from the
pickle). Hub ids are resolved to local snapshots by `ast_jax.checkpoints.hub`.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy
from flax.traverse_util import flatten_dict, unflatten_dict

from ast_jax.checkpoints.hub import resolve
from ast_jax.checkpoints.keymaps import params_from_hf, params_to_hf
from ast_jax.checkpoints.torch_pickle import UnsafePickleError, read_torch_zip
from ast_jax.config import ASTConfig
from ast_jax.files import atomic_write, write_json
from ast_jax.frontend.extractor import PREPROCESSOR_CONFIG, FeatureExtractor
from ast_jax.model.params import backbone_params, check_params, has_head
from ast_jax.model.positions import GRID_FIELDS, PositionRule, adapt_params

__all__ = [
    "CONFIG_NAME",
    "HF_BIN_NAME",
    "HF_WEIGHTS_NAME",
    "WEIGHTS_NAME",
    "export_hf",
    "load_feature_extractor",
    "load_pretrained",
    "read_hf_state_dict",
    "read_safetensors",
    "save_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "ast_jax.safetensors"
HF_WEIGHTS_NAME = "model.safetensors"
HF_BIN_NAME = "pytorch_model.bin"
_FORMAT = {"format": "ast-jax", "version": "1"}
_HUB_FILES = [CONFIG_NAME, WEIGHTS_NAME, HF_WEIGHTS_NAME, PREPROCESSOR_CONFIG]


# ---- writing ---------------------------------------------------------------------------------


def _write_safetensors(path: Path, tensors: Mapping[str, Any], metadata: dict[str, str]) -> None:
    arrays = {
        name: np.ascontiguousarray(value, dtype=np.float32) for name, value in tensors.items()
    }
    atomic_write(path, lambda temp: safetensors.numpy.save_file(arrays, temp, metadata=metadata))


def save_pretrained(
    directory: str | os.PathLike[str],
    config: ASTConfig,
    params: Mapping[str, Any],
    feature_extractor: FeatureExtractor | None = None,
) -> Path:
    """Writes an ast-jax checkpoint directory (`config.json` + `ast_jax.safetensors`).

    Args:
        directory: created if needed; existing files of the same names are replaced atomically.
        config: the model config (its compute `dtype` is not saved: choose it when loading).
        params: an `ASTForAudioClassification` or `ASTModel` params tree for `config`.
        feature_extractor: if given, its `preprocessor_config.json` is written alongside.

    Returns:
        The directory.

    Raises:
        ValueError: `params` do not match `config`.
    """
    directory = Path(directory)
    check_params(params, config, with_head=has_head(params))
    _write_safetensors(directory / WEIGHTS_NAME, flatten_dict(params, sep="/"), _FORMAT)
    write_json(directory / CONFIG_NAME, config.to_hf_dict())
    if feature_extractor is not None:
        feature_extractor.save_pretrained(directory)
    return directory


def export_hf(
    directory: str | os.PathLike[str], config: ASTConfig, params: Mapping[str, Any]
) -> Path:
    """Writes a transformers-loadable directory: `config.json` + `model.safetensors`.

    A classifier tree is exported as `ASTForAudioClassification`, a backbone tree as `ASTModel`.

    Raises:
        ValueError: `params` do not match `config`.
    """
    directory = Path(directory)
    state_dict = params_to_hf(params, config)
    architecture = "ASTForAudioClassification" if has_head(params) else "ASTModel"
    _write_safetensors(directory / HF_WEIGHTS_NAME, state_dict, {"format": "pt"})
    write_json(directory / CONFIG_NAME, {**config.to_hf_dict(), "architectures": [architecture]})
    return directory


# ---- reading ---------------------------------------------------------------------------------


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of a safetensors file, as NumPy arrays.

    Raises:
      ValueError: a corrupt or truncated file.
    """
    try:
        with safetensors.safe_open(path, framework="np") as file:
            metadata = file.metadata() or {}
            return {name: file.get_tensor(name) for name in file.keys()}, metadata
    except safetensors.SafetensorError as error:
        raise ValueError(f"{path}: corrupt or truncated safetensors file ({error})") from error


def _read_torch_bin(path: Path) -> dict[str, np.ndarray]:
    """`torch.load(weights_only=True)` when torch is importable, else the restricted reader."""
    try:
        import torch
    except ImportError:
        return read_torch_zip(path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafePickleError(f"{path}: refused by torch.load(weights_only=True)") from error
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(state_dict).__name__}")
    return {key: value.detach().float().numpy() for key, value in state_dict.items()}


def read_hf_state_dict(directory: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The PyTorch-layout state dict of a Hugging Face checkpoint directory.

    Prefers `model.safetensors`; falls back to `pytorch_model.bin` (never executing pickle code).

    Raises:
        FileNotFoundError: neither weights file exists.
        ValueError: a corrupt file; `UnsafePickleError` for a pickle that is not a plain state dict.
    """
    directory = Path(directory)
    if (directory / HF_WEIGHTS_NAME).is_file():
        return read_safetensors(directory / HF_WEIGHTS_NAME)[0]
    if (directory / HF_BIN_NAME).is_file():
        return _read_torch_bin(directory / HF_BIN_NAME)
    raise FileNotFoundError(
        f"no weights in {directory}: expected {WEIGHTS_NAME}, {HF_WEIGHTS_NAME} or {HF_BIN_NAME}"
    )


def _load_ast_jax(path: Path, config: ASTConfig, with_head: bool | None) -> dict[str, Any]:
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != _FORMAT["format"] or metadata.get("version") != _FORMAT["version"]:
        raise ValueError(f"{path}: expected metadata {_FORMAT}, got {metadata}")
    params = unflatten_dict(tensors, sep="/")
    head = has_head(params)
    if with_head is False:
        params = backbone_params(params)
    check_params(params, config, with_head=head if with_head is None else with_head)
    return params


def _has_hf_head(state_dict: Mapping[str, Any]) -> bool:
    return any(key.startswith("classifier.") for key in state_dict)


def load_pretrained(
    path_or_repo_id: str | os.PathLike[str],
    *,
    with_head: bool | None = None,
    revision: str | None = None,
    positions: PositionRule = "audioset",
    **overrides: Any,
) -> tuple[ASTConfig, dict[str, Any]]:
    """Loads a config and params from an ast-jax directory, a HF directory or a hub repo id.

    Args:
        path_or_repo_id: a local directory, or a hub id such as
            "MIT/ast-finetuned-audioset-10-10-0.4593" (downloaded with
            `huggingface_hub.snapshot_download`: config, weights and `preprocessor_config.json`).
        with_head: True for `ASTForAudioClassification` params, False for `ASTModel` params (the
            head of a classifier checkpoint is dropped), None for whatever the checkpoint holds.
        revision: hub branch, tag or commit.
        positions: how the position table follows a `max_length`, `num_mel_bins` or stride
            override: "audioset" (the original code's cut-from-the-middle or bilinear resize),
            "imagenet" or "prefix" (first `t_dim` columns; see `ast_jax.model.positions`).
        **overrides: `ASTConfig` fields to replace, e.g. `dtype="bfloat16"` or `max_length=512`.

    Returns:
        `(config, params)`, params as float32 NumPy leaves.

    Raises:
        FileNotFoundError: missing directory, `config.json` or weights.
        ValueError: corrupt files, weights that do not match the config (named key by key), or a
            grid override the `positions` rule cannot serve.
        UnsafePickleError: a `.bin` whose pickle is not a plain tensor state dict.
        ImportError / OSError: a hub id without huggingface_hub, or the download failed.
    """
    directory = resolve(path_or_repo_id, revision, _HUB_FILES)
    if not any((directory / name).is_file() for name in (WEIGHTS_NAME, HF_WEIGHTS_NAME)):
        # A hub repo without safetensors: fetch the pickle too (a local directory is unchanged).
        directory = resolve(path_or_repo_id, revision, [*_HUB_FILES, HF_BIN_NAME])
    if not (directory / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}")
    grid = {key: overrides.pop(key) for key in GRID_FIELDS if key in overrides}
    config = ASTConfig.from_json_file(directory / CONFIG_NAME, **overrides)
    if (directory / WEIGHTS_NAME).is_file():
        params = _load_ast_jax(directory / WEIGHTS_NAME, config, with_head)
    else:
        state_dict = read_hf_state_dict(directory)
        head = _has_hf_head(state_dict) if with_head is None else with_head
        params = params_from_hf(state_dict, config, with_head=head)
    return _adapted(config, params, grid, positions)


def _adapted(
    config: ASTConfig, params: dict[str, Any], grid: Mapping[str, int], rule: PositionRule
) -> tuple[ASTConfig, dict[str, Any]]:
    """`(config, params)` moved to the grid fields in `grid` (unchanged when there are none)."""
    target = replace(config, **grid)
    if target == config:
        return config, params
    return target, adapt_params(params, config, target, rule=rule)


def load_feature_extractor(
    path_or_repo_id: str | os.PathLike[str], *, revision: str | None = None
) -> FeatureExtractor:
    """Loads the `preprocessor_config.json` of a local directory or hub repo id.

    Raises:
        FileNotFoundError: no directory or no `preprocessor_config.json` in it.
        ImportError / OSError: a hub id without huggingface_hub, or the download failed.
    """
    directory = resolve(path_or_repo_id, revision, [PREPROCESSOR_CONFIG])
    return FeatureExtractor.from_pretrained(directory)
