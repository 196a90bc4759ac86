"""Original YuanGongND/ast checkpoints: one `.pth` file with no config.

The file is read with the restricted reader only (`ast_jax.checkpoints.torch_pickle`: no code from
the pickle runs, torch is not needed). The config is inferred from the tensor shapes, the file name
(`audioset_10_10_0.4593.pth` gives the strides) and arguments (`original_config`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ast_jax.checkpoints.keymaps import params_from_original
from ast_jax.checkpoints.torch_pickle import read_torch_zip
from ast_jax.config import PRESETS, SPEECH_COMMANDS_LABELS, TIMM_LAYER_NORM_EPS, ASTConfig
from ast_jax.model.params import check_finite

__all__ = ["load_original", "original_config"]

# `audioset_{fstride}_{tstride}_{mAP}.pth`, as the original ensemble scripts parse it.
_ORIGINAL_NAME = re.compile(r"_(\d+)_(\d+)_[\d.]+\.pth$")
# Heads are not in the tensors; every original backbone (tiny 192/3, small 384/6, base 768/12)
# has 64-wide heads (docs/checkpoints.md, Config inference).
_ORIGINAL_HEAD_DIM = 64
# Input lengths the released checkpoints were trained at: AudioSet, ESC-50, Speech Commands.
_ORIGINAL_LENGTHS = (1024, 512, 128)
_ORIGINAL_LABELS = {
    527: PRESETS["MIT/ast-finetuned-audioset-10-10-0.4593"].labels,
    35: SPEECH_COMMANDS_LABELS,
}


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
    """Infers the config of an original YuanGongND/ast state dict (docs/checkpoints.md, Config
    inference).

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
        ValueError: see `original_config` and `params_from_original`; weights holding NaN or
            infinity.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    state_dict = read_torch_zip(path)
    config = original_config(state_dict, filename=path.name, **config_options)
    head = config.num_labels > 0 if with_head is None else with_head
    params = params_from_original(state_dict, config, with_head=head)
    check_finite(params, str(path))
    return config, params
