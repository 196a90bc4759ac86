"""Saving and loading AST checkpoints: ast-jax directories, Hugging Face directories, hub ids.

An ast-jax directory holds `config.json` (Hugging Face format) and `ast_jax.safetensors`: the Flax
params flattened to '/'-joined paths (e.g. `backbone/layer_0/attention/qkv/kernel`), float32, with
metadata `{"format": "ast-jax", "version": "1"}`. The name cannot be mistaken for HF's
`model.safetensors`, whose tensors are in PyTorch layout. Every file is written to a temporary file
in the target directory and moved into place with `os.replace`, so a crash never leaves a partial
file.

A Hugging Face directory holds `config.json` and `model.safetensors` (read with safetensors' NumPy
API) or `pytorch_model.bin` (read with `torch.load(weights_only=True)` when torch is installed, else
with the restricted reader in `ast_jax.torch_pickle`; neither runs code from the pickle).

An original YuanGongND/ast checkpoint is one `.pth` file with no config (`load_original`): it is
read with the restricted reader only, and the config is inferred from the tensor shapes, the file
name (`audioset_10_10_0.4593.pth` gives the strides) and arguments (`original_config`).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy
from flax.traverse_util import flatten_dict, unflatten_dict

from ast_jax.config import PRESETS, SPEECH_COMMANDS_LABELS, TIMM_LAYER_NORM_EPS, ASTConfig
from ast_jax.convert import params_from_hf, params_from_original, params_to_hf
from ast_jax.features import PREPROCESSOR_CONFIG, FeatureExtractor
from ast_jax.model import check_params
from ast_jax.positions import PositionRule, adapt_params
from ast_jax.torch_pickle import UnsafePickleError, read_torch_zip

__all__ = [
    "CONFIG_NAME",
    "HF_BIN_NAME",
    "HF_WEIGHTS_NAME",
    "WEIGHTS_NAME",
    "export_hf",
    "load_feature_extractor",
    "load_original",
    "load_pretrained",
    "load_source",
    "original_config",
    "read_hf_state_dict",
    "save_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "ast_jax.safetensors"
HF_WEIGHTS_NAME = "model.safetensors"
HF_BIN_NAME = "pytorch_model.bin"
_FORMAT = {"format": "ast-jax", "version": "1"}
# "name" or "org/name" as the hub spells repo ids.
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_HUB_FILES = [CONFIG_NAME, WEIGHTS_NAME, HF_WEIGHTS_NAME, PREPROCESSOR_CONFIG]
# Config fields that change the patch grid: overriding them adapts the position table.
_GRID_FIELDS = ("max_length", "num_mel_bins", "frequency_stride", "time_stride")
# `audioset_{fstride}_{tstride}_{mAP}.pth`, as the original ensemble scripts parse it.
_ORIGINAL_NAME = re.compile(r"_(\d+)_(\d+)_[\d.]+\.pth$")
# Heads are not in the tensors; every original backbone (tiny 192/3, small 384/6, base 768/12,
# AST_SPEC §4.9) has 64-wide heads.
_ORIGINAL_HEAD_DIM = 64
# Input lengths the released checkpoints were trained at: AudioSet, ESC-50, Speech Commands.
_ORIGINAL_LENGTHS = (1024, 512, 128)
_ORIGINAL_LABELS = {
    527: PRESETS["MIT/ast-finetuned-audioset-10-10-0.4593"].labels,
    35: SPEECH_COMMANDS_LABELS,
}


# ---- writing ---------------------------------------------------------------------------------


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Calls `write(temp_path)` on a temporary file next to `path`, then renames it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def _write_config(path: Path, data: Mapping[str, Any]) -> None:
    def write(temp: str) -> None:
        with open(temp, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, sort_keys=True)
            file.write("\n")

    _atomic_write(path, write)


def _write_safetensors(path: Path, tensors: Mapping[str, Any], metadata: dict[str, str]) -> None:
    arrays = {
        name: np.ascontiguousarray(value, dtype=np.float32) for name, value in tensors.items()
    }
    _atomic_write(path, lambda temp: safetensors.numpy.save_file(arrays, temp, metadata=metadata))


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
    check_params(params, config, with_head="classifier" in params)
    _write_safetensors(directory / WEIGHTS_NAME, flatten_dict(params, sep="/"), _FORMAT)
    _write_config(directory / CONFIG_NAME, config.to_hf_dict())
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
    architecture = "ASTForAudioClassification" if "classifier" in params else "ASTModel"
    _write_safetensors(directory / HF_WEIGHTS_NAME, state_dict, {"format": "pt"})
    _write_config(directory / CONFIG_NAME, {**config.to_hf_dict(), "architectures": [architecture]})
    return directory


# ---- resolving a path or hub id --------------------------------------------------------------


def _snapshot(repo_id: str, revision: str | None, files: list[str]) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:
        raise ImportError(
            f"{repo_id!r} is not a local directory, and downloading it from the Hugging Face hub "
            "needs huggingface_hub (pip install huggingface_hub)"
        ) from error
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=files))
    except (OSError, ValueError) as error:
        raise OSError(
            f"{repo_id!r} is not a local directory and could not be downloaded from the Hugging "
            f"Face hub (offline, unknown repo or revision, or no access?): {error}"
        ) from error


def _resolve(
    path_or_repo_id: str | os.PathLike[str], revision: str | None, files: list[str]
) -> Path:
    """A local directory as is, else a hub snapshot holding (those of) `files`."""
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path} is a file; expected a checkpoint directory")
    if not isinstance(path_or_repo_id, str) or not _REPO_ID.fullmatch(path_or_repo_id):
        raise FileNotFoundError(f"{path} is neither a directory nor a hub repo id")
    return _snapshot(path_or_repo_id, revision, files)


# ---- reading ---------------------------------------------------------------------------------


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
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
        return _read_safetensors(directory / HF_WEIGHTS_NAME)[0]
    if (directory / HF_BIN_NAME).is_file():
        return _read_torch_bin(directory / HF_BIN_NAME)
    raise FileNotFoundError(
        f"no weights in {directory}: expected {WEIGHTS_NAME}, {HF_WEIGHTS_NAME} or {HF_BIN_NAME}"
    )


def _load_ast_jax(path: Path, config: ASTConfig, with_head: bool | None) -> dict[str, Any]:
    tensors, metadata = _read_safetensors(path)
    if metadata.get("format") != _FORMAT["format"] or metadata.get("version") != _FORMAT["version"]:
        raise ValueError(f"{path}: expected metadata {_FORMAT}, got {metadata}")
    params = unflatten_dict(tensors, sep="/")
    has_head = "classifier" in params
    if with_head is False and has_head:
        params = params["backbone"]
    check_params(params, config, with_head=has_head if with_head is None else with_head)
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
            "imagenet" or "prefix" (first `t_dim` columns; see `ast_jax.positions`).
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
    directory = _resolve(path_or_repo_id, revision, _HUB_FILES)
    if not any((directory / name).is_file() for name in (WEIGHTS_NAME, HF_WEIGHTS_NAME)):
        # A hub repo without safetensors: fetch the pickle too (a local directory is unchanged).
        directory = _resolve(path_or_repo_id, revision, [*_HUB_FILES, HF_BIN_NAME])
    if not (directory / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}")
    grid = {key: overrides.pop(key) for key in _GRID_FIELDS if key in overrides}
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


def _original_strides(
    filename: str | None, frequency_stride: int | None, time_stride: int | None
) -> tuple[int, int]:
    """Strides from the arguments, else from an `audioset_{f}_{t}_{mAP}.pth` file name."""
    match = _ORIGINAL_NAME.search(filename or "")
    if frequency_stride is None or time_stride is None:
        if match is None:
            raise ValueError(
                f"cannot read the strides from the file name {filename!r} (expected "
                "'..._{fstride}_{tstride}_{score}.pth'); pass frequency_stride and time_stride"
            )
    named = (int(match[1]), int(match[2])) if match else (None, None)
    return (
        named[0] if frequency_stride is None else frequency_stride,
        named[1] if time_stride is None else time_stride,
    )


def _original_length(patches: int, f_dim: int, time_stride: int, patch_size: int) -> int:
    """The canonical input length whose patch grid has `patches` patches with `f_dim` rows."""
    if patches % f_dim:
        raise ValueError(
            f"pos_embed has {patches} patch rows, not a multiple of f_dim {f_dim}: wrong "
            "frequency_stride or num_mel_bins?"
        )
    t_dim = patches // f_dim
    for length in _ORIGINAL_LENGTHS:
        if (length - patch_size) // time_stride + 1 == t_dim:
            return length
    raise ValueError(
        f"t_dim {t_dim} matches none of the canonical lengths {_ORIGINAL_LENGTHS} at time "
        f"stride {time_stride}; pass max_length"
    )


def original_config(
    state_dict: Mapping[str, Any],
    *,
    filename: str | None = None,
    frequency_stride: int | None = None,
    time_stride: int | None = None,
    max_length: int | None = None,
    num_mel_bins: int = 128,
    num_attention_heads: int | None = None,
    timm_exact: bool = True,
) -> ASTConfig:
    """Infers the config of an original YuanGongND/ast state dict (AST_SPEC §5.2).

    Widths, depth, class count and the patch grid come from the tensors; what they do not record
    comes from the arguments or conventions.

    Args:
        state_dict: original keys (with or without `module.`) -> arrays.
        filename: the checkpoint's file name; `audioset_10_10_0.4593.pth` gives strides 10/10.
        frequency_stride: overrides the file name's.
        time_stride: overrides the file name's.
        max_length: input frames T; None for the canonical length (1024, 512, 128) whose time grid
            matches the position table.
        num_mel_bins: F (all released checkpoints use 128).
        num_attention_heads: None for 64-wide heads, as in every original backbone (768: 12,
            384: 6, 192: 3).
        timm_exact: the original model's LayerNorm epsilons (`TIMM_LAYER_NORM_EPS`); False for
            Hugging Face's 1e-12 everywhere (what the MIT hub conversion runs).

    Returns:
        The config; labels are AudioSet's 527 or Speech Commands' 35 by count, else generic.

    Raises:
        ValueError: strides neither given nor in the file name, a key the inference needs is
            missing, or a position table that does not fit the strides and length.
    """
    tensors = {key.removeprefix("module."): np.shape(value) for key, value in state_dict.items()}
    needed = (
        "v.cls_token",
        "v.pos_embed",
        "v.patch_embed.proj.weight",
        "v.blocks.0.mlp.fc1.weight",
    )
    missing = [key for key in needed if key not in tensors]
    if missing:
        raise ValueError(f"not an original AST state dict: missing {missing}")
    fstride, tstride = _original_strides(filename, frequency_stride, time_stride)
    hidden = tensors["v.cls_token"][-1]
    patch_size = tensors["v.patch_embed.proj.weight"][-1]
    if num_attention_heads is None and hidden % _ORIGINAL_HEAD_DIM:
        raise ValueError(
            f"width {hidden} is not a multiple of the original {_ORIGINAL_HEAD_DIM}-wide heads; "
            "pass num_attention_heads"
        )
    heads = num_attention_heads or hidden // _ORIGINAL_HEAD_DIM
    layers = len({key.split(".")[2] for key in tensors if key.startswith("v.blocks.")})
    num_labels = tensors["mlp_head.1.weight"][0] if "mlp_head.1.weight" in tensors else 0
    labels = _ORIGINAL_LABELS.get(num_labels, tuple(f"LABEL_{i}" for i in range(num_labels)))
    f_dim = (num_mel_bins - patch_size) // fstride + 1
    patches = tensors["v.pos_embed"][1] - 2
    length = max_length or _original_length(patches, f_dim, tstride, patch_size)
    return ASTConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=tensors["v.blocks.0.mlp.fc1.weight"][0],
        qkv_bias="v.blocks.0.attn.qkv.bias" in tensors,
        patch_size=patch_size,
        frequency_stride=fstride,
        time_stride=tstride,
        max_length=length,
        num_mel_bins=num_mel_bins,
        labels=labels,
        **(TIMM_LAYER_NORM_EPS if timm_exact else {}),
    )


def load_original(
    path: str | os.PathLike[str],
    *,
    with_head: bool | None = None,
    **config_options: Any,
) -> tuple[ASTConfig, dict[str, Any]]:
    """Loads an original YuanGongND/ast `.pth` checkpoint without torch and without running code.

    Args:
        path: the `.pth` file (a `torch.save` ZIP of the `nn.DataParallel` state dict).
        with_head: True for `ASTForAudioClassification` params, False for `ASTModel` params, None
            for whatever the checkpoint holds.
        **config_options: the keyword arguments of `original_config` (the file name is passed
            for you).

    Returns:
        `(config, params)`, params as float32 NumPy leaves; timm-exact LayerNorm epsilons unless
        `timm_exact=False`.

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: the pickle asks for anything but tensors.
        ValueError: see `original_config` and `params_from_original`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    state_dict = read_torch_zip(path)
    config = original_config(state_dict, filename=path.name, **config_options)
    head = config.num_labels > 0 if with_head is None else with_head
    return config, params_from_original(state_dict, config, with_head=head)


def load_feature_extractor(
    path_or_repo_id: str | os.PathLike[str], *, revision: str | None = None
) -> FeatureExtractor:
    """Loads the `preprocessor_config.json` of a local directory or hub repo id.

    Raises:
        FileNotFoundError: no directory or no `preprocessor_config.json` in it.
        ImportError / OSError: a hub id without huggingface_hub, or the download failed.
    """
    directory = _resolve(path_or_repo_id, revision, [PREPROCESSOR_CONFIG])
    return FeatureExtractor.from_pretrained(directory)


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
