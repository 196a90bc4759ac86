"""Params trees of the AST modules: their expected shapes, checks, and the backbone inside.

A classifier tree is ``{"backbone": <ASTModel tree>, "classifier": ...}``; a backbone tree is the
`ASTModel` tree alone (`ast_jax.model.modules` draws both).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict

from ast_jax.config import ASTConfig
from ast_jax.model.modules import ASTForAudioClassification, ASTModel

__all__ = [
    "abstract_params",
    "backbone_params",
    "build_model",
    "check_finite",
    "check_params",
    "has_head",
    "init_params",
    "with_backbone",
]


def has_head(params: Mapping[str, Any]) -> bool:
    """Whether ``params`` is a classifier tree (backbone and head) rather than a backbone."""
    return "classifier" in params


def backbone_params(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The `ASTModel` params of a classifier tree, or ``params`` itself if it is a backbone."""
    return params["backbone"] if has_head(params) else params


def with_backbone(params: Mapping[str, Any], backbone: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with its backbone replaced: a classifier tree keeps its head."""
    return {**params, "backbone": backbone} if has_head(params) else dict(backbone)


def build_model(config: ASTConfig, *, with_head: bool = True) -> nn.Module:
    """`ASTForAudioClassification(config)` if `with_head`, else `ASTModel(config)`."""
    return ASTForAudioClassification(config) if with_head else ASTModel(config)


@functools.lru_cache(maxsize=16)
def abstract_params(config: ASTConfig, *, with_head: bool = True) -> dict[str, Any]:
    """The params tree of `build_model(config, with_head=...)` as `jax.ShapeDtypeStruct`s.

    Traced with the XLA attention kernel: params do not depend on the kernel, and a cuDNN
    config can then be checked on a host without a GPU. Cached per config: loading a checkpoint
    checks its params more than once, and each trace of the model costs a noticeable part of a
    command's start. Do not modify the returned tree.
    """
    model = build_model(dataclasses.replace(config, attention="xla"), with_head=with_head)
    dummy = jax.ShapeDtypeStruct((1, config.max_length, config.num_mel_bins), jnp.float32)
    # The key is made inside the traced function: an eager one would compile a seeding program.
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), dummy)
    return variables["params"]


def check_params(params: Any, config: ASTConfig, *, with_head: bool = True) -> None:
    """Checks a params tree against `abstract_params`: same paths, shapes and float32 dtype.

    Raises:
        ValueError: listing every missing path, unexpected path and shape/dtype mismatch.
    """
    expected = flatten_dict(abstract_params(config, with_head=with_head), sep="/")
    got = flatten_dict(params, sep="/") if isinstance(params, Mapping) else {}
    problems = [f"missing: {path}" for path in sorted(set(expected) - set(got))]
    problems += [f"unexpected: {path}" for path in sorted(set(got) - set(expected))]
    for path in sorted(set(expected) & set(got)):
        want, have = expected[path], got[path]
        shape, dtype = tuple(getattr(have, "shape", ())), getattr(have, "dtype", None)
        if shape != want.shape or dtype != want.dtype:
            problems.append(
                f"mismatch: {path} expected {want.shape} {want.dtype}, got {shape} {dtype}"
            )
    if problems:
        kind = "ASTForAudioClassification" if with_head else "ASTModel"
        raise ValueError(f"params do not match {kind} for this config:\n  " + "\n  ".join(problems))


def check_finite(params: Any, source: str) -> None:
    """Refuses a params tree holding NaN or infinity: such weights give NaN scores for every input.

    Args:
        params: a params tree (nested mappings of arrays).
        source: what the params were read from, for the message.

    Raises:
        ValueError: naming the first few offending arrays and how many values each holds.
    """
    flat = flatten_dict(params, sep="/") if isinstance(params, Mapping) else {}
    bad = {}
    for path, value in flat.items():
        count = int(np.size(value) - np.count_nonzero(np.isfinite(np.asarray(value))))
        if count:
            bad[path] = count
    if bad:
        shown = ", ".join(f"{path} ({count})" for path, count in list(bad.items())[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ValueError(
            f"{source}: weights hold NaN or infinity in {shown}{more}; the checkpoint is corrupt"
        )


# timm's DeiT init (the original AST's) for the tokens and position table: truncated normal.
_TOKEN_STD = 0.02
_TOKENS = ("cls_token", "distillation_token", "position_embeddings")


def init_params(config: ASTConfig, seed: int, *, scratch: bool = False) -> dict[str, Any]:
    """Random ``ASTForAudioClassification`` params.

    Args:
      config: the model config.
      seed: init seed.
      scratch: for training from scratch. HF zero-initialises the cls/distillation tokens and the
        position table (it only ever fine-tunes); from scratch that stalls training: LayerNorm of
        the all-zero cls token has a ``1/sqrt(eps)`` = 1e6 gradient, and zero positions leave the
        patches unordered. With ``scratch`` they get timm's DeiT init (truncated normal, std
        0.02), as in the original AST.
    """
    dummy = jnp.zeros((1, config.max_length, config.num_mel_bins), jnp.float32)
    params = ASTForAudioClassification(config).init(jax.random.key(seed), dummy)["params"]
    if not scratch:
        return params
    embeddings = dict(params["backbone"]["embeddings"])
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), 1), len(_TOKENS))
    for key, name in zip(keys, _TOKENS, strict=True):
        shape = embeddings[name].shape
        embeddings[name] = _TOKEN_STD * jax.random.truncated_normal(key, -2.0, 2.0, shape)
    return with_backbone(params, {**params["backbone"], "embeddings": embeddings})
