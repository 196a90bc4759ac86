"""Checkpoint directories: ast-jax's own format and Hugging Face's, read and written.

An ast-jax directory holds `config.json` (Hugging Face format) and `ast_jax.safetensors`: the Flax
params flattened to '/'-joined paths (e.g. `backbone/layer_0/attention/qkv/kernel`), float32, with
metadata `{"format": "ast-jax", "version": "1"}`. The name cannot be mistaken for HF's
`model.safetensors`, whose tensors are in PyTorch layout. Every file is written with
`ast_jax.files.atomic_write`, so a crash never leaves a partial file.

A Hugging Face directory holds `config.json` and `model.safetensors` (read with safetensors' NumPy
API) or `pytorch_model.bin` (read with `torch.load(weights_only=True)` when torch is installed, else
with the restricted reader in `ast_jax.checkpoints.torch_pickle`; neither runs code from the
pickle). Hub ids are resolved to local snapshots in the shared hub cache by `ast_jax.hub`.

`load_pretrained` loads as transformers' `from_pretrained` does: weights a checkpoint lacks are
initialised and named, weights the model does not use are named and left out, and weights of the
wrong shape raise unless `ignore_mismatched_sizes` (a new head for other labels).
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import safetensors
import safetensors.numpy
from flax.traverse_util import flatten_dict, unflatten_dict

from ast_jax.checkpoints.keymaps import ConversionReport, convert_hf_state_dict, params_to_hf
from ast_jax.checkpoints.torch_pickle import UnsafePickleError, read_torch_zip
from ast_jax.config import CONFIG_NAME, ASTConfig
from ast_jax.files import atomic_directory, write_json
from ast_jax.frontend.extractor import PREPROCESSOR_CONFIG, FeatureExtractor
from ast_jax.hub import resolve
from ast_jax.model.params import (
    abstract_params,
    build_model,
    check_finite,
    check_params,
    has_head,
)
from ast_jax.model.positions import GRID_FIELDS, PositionRule, adapt_params

__all__ = [
    "CHECKPOINT_FILES",
    "CONFIG_NAME",
    "HF_BIN_NAME",
    "HF_WEIGHTS_NAME",
    "WEIGHTS_NAME",
    "ShapeMismatchError",
    "export_hf",
    "load_feature_extractor",
    "load_pretrained",
    "read_hf_state_dict",
    "read_safetensors",
    "save_pretrained",
]

WEIGHTS_NAME = "ast_jax.safetensors"
HF_WEIGHTS_NAME = "model.safetensors"
HF_BIN_NAME = "pytorch_model.bin"
_FORMAT = {"format": "ast-jax", "version": "1"}
_HUB_FILES = [CONFIG_NAME, WEIGHTS_NAME, HF_WEIGHTS_NAME, PREPROCESSOR_CONFIG]
# What a checkpoint directory may hold; writing one replaces only a directory of these files.
CHECKPOINT_FILES = frozenset(
    {*_HUB_FILES, HF_BIN_NAME, "model.safetensors.index.json", "README.md", ".gitattributes"}
)


# ---- writing ---------------------------------------------------------------------------------


def _write_safetensors(path: Path, tensors: Mapping[str, Any], metadata: dict[str, str]) -> None:
    arrays = {
        name: np.ascontiguousarray(value, dtype=np.float32) for name, value in tensors.items()
    }
    safetensors.numpy.save_file(arrays, path, metadata=metadata)


def save_pretrained(
    directory: str | os.PathLike[str],
    config: ASTConfig,
    params: Mapping[str, Any],
    feature_extractor: FeatureExtractor | None = None,
) -> Path:
    """Writes an ast-jax checkpoint directory (`config.json` + `ast_jax.safetensors`).

    Args:
        directory: created if needed. An existing checkpoint there is replaced as a whole
            (`ast_jax.files.atomic_directory`): none of its files survives, a
            `preprocessor_config.json` included; a directory holding other files is refused.
        config: the model config (its compute `dtype` is not saved: choose it when loading).
        params: an `ASTForAudioClassification` or `ASTModel` params tree for `config`.
        feature_extractor: if given, its `preprocessor_config.json` is written alongside.

    Returns:
        The directory.

    Raises:
        ValueError: `params` do not match `config`, or hold NaN or infinity.
        FileExistsError: `directory` is a file, or holds files other than a checkpoint's.
    """
    check_params(params, config, with_head=has_head(params))
    check_finite(params, "params")
    with atomic_directory(directory, replaceable=CHECKPOINT_FILES) as temp:
        _write_safetensors(temp / WEIGHTS_NAME, flatten_dict(params, sep="/"), _FORMAT)
        write_json(temp / CONFIG_NAME, config.to_hf_dict())
        if feature_extractor is not None:
            feature_extractor.save_pretrained(temp)
    return Path(directory)


def export_hf(
    directory: str | os.PathLike[str],
    config: ASTConfig,
    params: Mapping[str, Any],
    feature_extractor: FeatureExtractor | None = None,
) -> Path:
    """Writes a transformers-loadable directory: `config.json` + `model.safetensors`, and the
    extractor's `preprocessor_config.json` if one is given.

    A classifier tree is exported as `ASTForAudioClassification`, a backbone tree as `ASTModel`.
    The directory is written as a whole, as by `save_pretrained`: a file an earlier checkpoint
    left there (a `preprocessor_config.json` too) does not survive, so pass the extractor here
    rather than saving it into the directory first.

    Raises:
        ValueError: `params` do not match `config`, or hold NaN or infinity.
        FileExistsError: `directory` is a file, or holds files other than a checkpoint's.
    """
    state_dict = params_to_hf(params, config)
    check_finite(params, "params")
    architecture = "ASTForAudioClassification" if has_head(params) else "ASTModel"
    with atomic_directory(directory, replaceable=CHECKPOINT_FILES) as temp:
        _write_safetensors(temp / HF_WEIGHTS_NAME, state_dict, {"format": "pt"})
        write_json(temp / CONFIG_NAME, {**config.to_hf_dict(), "architectures": [architecture]})
        if feature_extractor is not None:
            feature_extractor.save_pretrained(temp)
    return Path(directory)


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


class ShapeMismatchError(ValueError, RuntimeError):
    """Checkpoint weights whose shapes do not match the model, without `ignore_mismatched_sizes`.

    A `ValueError` like every other mismatch this package reports, and a `RuntimeError` like the
    error transformers raises in the same case, so code written for either catches it.
    """


def _read_ast_jax(path: Path) -> dict[str, np.ndarray]:
    """The '/'-path -> array tensors of an `ast_jax.safetensors` file."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != _FORMAT["format"] or metadata.get("version") != _FORMAT["version"]:
        raise ValueError(f"{path}: expected metadata {_FORMAT}, got {metadata}")
    return tensors


def _has_hf_head(state_dict: Mapping[str, Any]) -> bool:
    return any(key.startswith("classifier.") for key in state_dict)


def _fresh_params(config: ASTConfig, with_head: bool, seed: int) -> dict[tuple[str, ...], Any]:
    """A randomly initialised params tree (HF's init), flat, for weights a checkpoint lacks."""
    model = build_model(replace(config, attention="xla"), with_head=with_head)
    dummy = jnp.zeros((1, config.max_length, config.num_mel_bins), jnp.float32)
    params = jax.jit(model.init)(jax.random.key(seed), dummy)["params"]
    return flatten_dict(jax.device_get(params))


def _match_ast_jax(
    tensors: Mapping[str, np.ndarray], config: ASTConfig, with_head: bool
) -> tuple[dict[tuple[str, ...], np.ndarray], ConversionReport]:
    """The ast-jax counterpart of `convert_hf_state_dict`: keys are '/'-joined param paths."""
    report = ConversionReport()
    origin = {key: key for key in tensors}  # our key -> the file's
    classifier_file = any(key.startswith(("backbone/", "classifier/")) for key in tensors)
    if with_head and not classifier_file:  # a backbone checkpoint loaded into a classifier
        origin = {f"backbone/{key}": key for key in tensors}
    elif not with_head and classifier_file:  # its backbone: the head is dropped on purpose
        report.dropped_head = sorted(key for key in tensors if key.startswith("classifier/"))
        origin = {
            key.removeprefix("backbone/"): key
            for key in tensors
            if not key.startswith("classifier/")
        }
    tensors = {key: tensors[name] for key, name in origin.items()}
    expected = flatten_dict(abstract_params(config, with_head=with_head), sep="/")
    flat = {}
    for key, want in expected.items():
        if key not in tensors:
            report.missing.append(key)
        elif tuple(tensors[key].shape) != tuple(want.shape):
            report.mismatched.append((key, tuple(tensors[key].shape), tuple(want.shape)))
        else:
            flat[tuple(key.split("/"))] = tensors[key]
    report.unexpected = sorted(origin[key] for key in set(tensors) - set(expected))
    return flat, report


def load_pretrained(
    path_or_repo_id: str | os.PathLike[str],
    *,
    with_head: bool | None = None,
    revision: str | None = None,
    positions: PositionRule = "audioset",
    subfolder: str = "",
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: bool | str | None = None,
    force_download: bool = False,
    ignore_mismatched_sizes: bool = False,
    output_loading_info: bool = False,
    seed: int = 0,
    **overrides: Any,
) -> tuple[ASTConfig, dict[str, Any]] | tuple[ASTConfig, dict[str, Any], dict[str, list[Any]]]:
    """Loads a config and params from an ast-jax directory, a HF directory or a hub repo id.

    Loading follows transformers' `from_pretrained`: weights the model needs but the checkpoint
    lacks (a backbone-only checkpoint loaded with `with_head=True`) are initialised as a new model's
    (HF's init, from `seed`), weights the model has no use for are left out, both with a warning
    naming them; weights of the wrong shape raise `ShapeMismatchError` unless
    `ignore_mismatched_sizes`, which re-initialises them (a new head: `num_labels=`, `id2label=`).
    Keys are named as the checkpoint names them (HF keys, or ast-jax's '/'-joined param paths).

    Args:
        path_or_repo_id: a local directory, or a hub id such as
            "MIT/ast-finetuned-audioset-10-10-0.4593" (through `huggingface_hub`: config, weights
            and `preprocessor_config.json`, downloaded once into the hub cache, then reused).
        with_head: True for `ASTForAudioClassification` params, False for `ASTModel` params (the
            head of a classifier checkpoint is dropped), None for whatever the checkpoint holds.
        revision: hub branch, tag or commit.
        positions: how the position table follows a `max_length`, `num_mel_bins` or stride
            override: "audioset" (the original code's cut-from-the-middle or bilinear resize),
            "imagenet" or "prefix" (first `t_dim` columns; see `ast_jax.model.positions`).
        subfolder: the folder inside the directory or repo that holds the checkpoint.
        cache_dir: the hub cache to use instead of huggingface_hub's default.
        local_files_only: use the hub cache only, never the network (also implied by
            `HF_HUB_OFFLINE=1` / `TRANSFORMERS_OFFLINE=1`).
        token: a hub token for private repos.
        force_download: download again even when cached.
        ignore_mismatched_sizes: re-initialise weights whose shapes differ from the model's
            instead of raising.
        output_loading_info: also return transformers' loading report, `{"missing_keys": [...],
            "unexpected_keys": [...], "mismatched_keys": [(key, checkpoint shape, model shape)],
            "error_msgs": []}` (sorted lists).
        seed: the init seed of re-initialised weights.
        **overrides: `ASTConfig` fields to replace, e.g. `dtype="bfloat16"` or `max_length=512`,
            and transformers' `num_labels` / `id2label` / `label2id`.

    Returns:
        `(config, params)`, params as float32 NumPy leaves; `(config, params, info)` with
        `output_loading_info`.

    Raises:
        FileNotFoundError: missing directory, `config.json` or weights.
        ShapeMismatchError: weights of the wrong shape, without `ignore_mismatched_sizes`.
        ValueError: corrupt files, weights holding NaN or infinity, keys given twice, or a grid
            override the `positions` rule cannot serve.
        UnsafePickleError: a `.bin` whose pickle is not a plain tensor state dict.
        ImportError / OSError: a hub id without huggingface_hub, or neither the hub nor its cache
            has it.
    """
    hub = {
        "subfolder": subfolder,
        "cache_dir": cache_dir,
        "local_files_only": local_files_only,
        "token": token,
        "force_download": force_download,
    }
    directory = resolve(path_or_repo_id, revision, _HUB_FILES, **hub)
    if not any((directory / name).is_file() for name in (WEIGHTS_NAME, HF_WEIGHTS_NAME)):
        # A hub repo without safetensors: fetch the pickle too (a local directory is unchanged).
        directory = resolve(path_or_repo_id, revision, [*_HUB_FILES, HF_BIN_NAME], **hub)
    if not (directory / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}: not a complete checkpoint")
    grid = {key: overrides.pop(key) for key in GRID_FIELDS if key in overrides}
    config = ASTConfig.from_json_file(directory / CONFIG_NAME, **overrides)
    if (directory / WEIGHTS_NAME).is_file():
        tensors = _read_ast_jax(directory / WEIGHTS_NAME)
        head = any(key.startswith("classifier/") for key in tensors)
        head = head if with_head is None else with_head

        def convert(fill: Mapping[tuple[str, ...], Any] | None) -> tuple[dict, ConversionReport]:
            flat, report = _match_ast_jax(tensors, config, head)
            for path in [] if fill is None else (set(fill) - set(flat)):
                flat[path] = np.asarray(fill[path], dtype=np.float32)
            return flat, report
    else:
        state_dict = read_hf_state_dict(directory)
        head = _has_hf_head(state_dict) if with_head is None else with_head

        def convert(fill: Mapping[tuple[str, ...], Any] | None) -> tuple[dict, ConversionReport]:
            return convert_hf_state_dict(state_dict, config, with_head=head, fill=fill)

    flat, report = convert(None)
    info = _loading_report(report, directory, head, ignore_mismatched_sizes)
    if report.missing or report.mismatched:
        flat, _ = convert(_fresh_params(config, head, seed))
    params = unflatten_dict(flat)
    check_params(params, config, with_head=head)
    check_finite(params, str(directory))
    config, params = _adapted(config, params, grid, positions)
    return (config, params, info) if output_loading_info else (config, params)


def _loading_report(
    report: ConversionReport, directory: Path, with_head: bool, ignore_mismatched_sizes: bool
) -> dict[str, list[Any]]:
    """transformers' loading-info dict for `report`; warns about what it names, and raises for
    duplicate keys and (without `ignore_mismatched_sizes`) for mismatched shapes."""
    kind = "ASTForAudioClassification" if with_head else "ASTModel"
    if report.duplicates:
        raise ValueError(
            f"{directory}: the checkpoint holds some weights twice:\n  "
            + "\n  ".join(report.messages)
        )
    mismatched = "\n  ".join(
        f"{key}: checkpoint {list(got)}, model {list(want)}" for key, got, want in report.mismatched
    )
    if report.mismatched and not ignore_mismatched_sizes:
        raise ShapeMismatchError(
            f"{kind} cannot load {directory}: the shapes did not match for\n  {mismatched}\n"
            "Pass ignore_mismatched_sizes=True to re-initialise these weights (for example a "
            "head for other classes, with num_labels= or id2label=)."
        )
    if report.mismatched:
        warnings.warn(
            f"Some weights of {kind} were re-initialised from the checkpoint at {directory} "
            f"because the shapes did not match:\n  {mismatched}\n"
            "Train the model on your task before using it for predictions.",
            stacklevel=3,
        )
    if report.missing:
        warnings.warn(
            f"Some weights of {kind} were not in the checkpoint at {directory} and are newly "
            f"initialised: {sorted(report.missing)}\n"
            "Train the model on your task before using it for predictions.",
            stacklevel=3,
        )
    if report.unexpected:
        warnings.warn(
            f"Some weights of the checkpoint at {directory} were not used by {kind}: "
            f"{sorted(report.unexpected)}",
            stacklevel=3,
        )
    return {
        "missing_keys": sorted(report.missing),
        "unexpected_keys": sorted(report.unexpected + report.dropped_head),
        "mismatched_keys": sorted(report.mismatched),
        "error_msgs": [],
    }


def _adapted(
    config: ASTConfig, params: dict[str, Any], grid: Mapping[str, int], rule: PositionRule
) -> tuple[ASTConfig, dict[str, Any]]:
    """`(config, params)` moved to the grid fields in `grid` (unchanged when there are none)."""
    target = replace(config, **grid)
    if target == config:
        return config, params
    return target, adapt_params(params, config, target, rule=rule)


def load_feature_extractor(
    path_or_repo_id: str | os.PathLike[str],
    *,
    revision: str | None = None,
    subfolder: str = "",
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: bool | str | None = None,
    force_download: bool = False,
    **overrides: Any,
) -> FeatureExtractor:
    """Loads the `preprocessor_config.json` of a local directory or hub repo id.

    The same as `FeatureExtractor.from_pretrained` (see there for the arguments).

    Raises:
        NotADirectoryError: `path_or_repo_id` is a file (an original `.pth`, say; unlike
            `FeatureExtractor.from_pretrained`, which reads a JSON file given by path).
        FileNotFoundError: no directory or no `preprocessor_config.json` in it.
        ImportError / OSError: a hub id without huggingface_hub, or neither the hub nor its cache
            has it.
    """
    if Path(path_or_repo_id).expanduser().is_file():
        raise NotADirectoryError(f"{path_or_repo_id} is a file; expected a checkpoint directory")
    return FeatureExtractor.from_pretrained(
        path_or_repo_id,
        revision=revision,
        subfolder=subfolder,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        force_download=force_download,
        **overrides,
    )
