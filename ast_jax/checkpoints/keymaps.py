"""Torch-free conversion between Hugging Face AST state dicts and ast-jax params.

A state dict is a `Mapping[str, np.ndarray]` in PyTorch layout, as `safetensors.numpy.load_file`
or the `.bin` reader return it. Rules (docs/checkpoints.md, Hugging Face key mapping):

* Linear `weight (out, in)` -> Dense `kernel (in, out)`: transpose.
* Conv2d `weight (O, I, kH, kW)` -> Conv `kernel (kH, kW, I, O)`: permute (2, 3, 1, 0).
* LayerNorm `weight` -> `scale`, `bias` -> `bias`.
* `query`/`key`/`value` are concatenated (after the transpose) into the fused `qkv` kernel `(D, 3D)`
  as `[q | k | v]`, and split back on the way out.

Keys are accepted with or without the `audio_spectrogram_transformer.` prefix, in the on-disk names
every transformers version writes (`encoder.layer.{i}.attention.attention.query.weight`) or the
in-memory names of transformers >= 5 (`layers.{i}.attention.q_proj.weight`). The reverse conversion
writes the on-disk names, which all transformers versions load.

Original YuanGongND/ast state dicts (docs/checkpoints.md, Original checkpoints: `module.v.*`,
`module.mlp_head.*`, with or without the `module.` of `nn.DataParallel`) convert directly by a key
table of their own: timm's fused `attn.qkv.weight` `(3D, D)` transposed is our `qkv` kernel
`(D, 3D)`, columns `[q | k | v]` already, so nothing is split. DeiT's unused ImageNet heads
`v.head`/`v.head_dist` are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from ast_jax.config import ASTConfig
from ast_jax.model.params import abstract_params, check_params, has_head

__all__ = [
    "HF_PREFIX",
    "ConversionReport",
    "convert_hf_state_dict",
    "params_from_hf",
    "params_from_original",
    "params_to_hf",
]

HF_PREFIX = "audio_spectrogram_transformer."
_HEAD_PREFIX = "classifier."
_ORIGINAL_PREFIX = "module."  # nn.DataParallel's wrapper
_ORIGINAL_HEAD_PREFIX = "mlp_head."
# timm DeiT's ImageNet classifiers: saved in every original checkpoint, never used by AST.
_ORIGINAL_DROPPED = ("v.head.", "v.head_dist.")

# transformers >= 5 renamed the modules in memory; its `save_pretrained` still writes the old names.
_V5_RENAMES = (
    (
        re.compile(r"^layers\.(\d+)\.attention\.q_proj\."),
        r"encoder.layer.\1.attention.attention.query.",
    ),
    (
        re.compile(r"^layers\.(\d+)\.attention\.k_proj\."),
        r"encoder.layer.\1.attention.attention.key.",
    ),
    (
        re.compile(r"^layers\.(\d+)\.attention\.v_proj\."),
        r"encoder.layer.\1.attention.attention.value.",
    ),
    (
        re.compile(r"^layers\.(\d+)\.attention\.o_proj\."),
        r"encoder.layer.\1.attention.output.dense.",
    ),
    (re.compile(r"^layers\.(\d+)\.mlp\.fc1\."), r"encoder.layer.\1.intermediate.dense."),
    (re.compile(r"^layers\.(\d+)\.mlp\.fc2\."), r"encoder.layer.\1.output.dense."),
    (re.compile(r"^layers\.(\d+)\."), r"encoder.layer.\1."),
)

_Transform = Callable[[np.ndarray], np.ndarray]
# kind -> (PyTorch -> Flax, Flax -> PyTorch)
_TRANSFORMS: dict[str, tuple[_Transform, _Transform]] = {
    "copy": (lambda a: a, lambda a: a),
    "linear": (lambda a: a.T, lambda a: a.T),
    "conv": (lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1)),
}


@dataclass(frozen=True)
class _Rule:
    """One Flax leaf made from one HF tensor, or from several concatenated along the last axis."""

    flax_path: tuple[str, ...]
    hf_keys: tuple[str, ...]
    kind: str

    def to_flax(self, arrays: list[np.ndarray]) -> np.ndarray:
        forward = _TRANSFORMS[self.kind][0]
        parts = [forward(a) for a in arrays]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    def to_hf(self, leaf: np.ndarray) -> list[np.ndarray]:
        backward = _TRANSFORMS[self.kind][1]
        return [backward(part) for part in np.split(leaf, len(self.hf_keys), axis=-1)]


def _dense(flax_path: tuple[str, ...], hf_modules: tuple[str, ...], bias: bool) -> Iterator[_Rule]:
    yield _Rule((*flax_path, "kernel"), tuple(f"{m}.weight" for m in hf_modules), "linear")
    if bias:
        yield _Rule((*flax_path, "bias"), tuple(f"{m}.bias" for m in hf_modules), "copy")


def _layer_norm(flax_path: tuple[str, ...], hf_module: str) -> Iterator[_Rule]:
    yield _Rule((*flax_path, "scale"), (f"{hf_module}.weight",), "copy")
    yield _Rule((*flax_path, "bias"), (f"{hf_module}.bias",), "copy")


def _backbone_rules(config: ASTConfig) -> Iterator[_Rule]:
    """Rules for `ASTModel` params, with unprefixed HF keys."""
    for name in ("cls_token", "distillation_token", "position_embeddings"):
        yield _Rule(("embeddings", name), (f"embeddings.{name}",), "copy")
    projection = "embeddings.patch_embeddings.projection"
    yield _Rule(("embeddings", "patch_projection", "kernel"), (f"{projection}.weight",), "conv")
    yield _Rule(("embeddings", "patch_projection", "bias"), (f"{projection}.bias",), "copy")
    for i in range(config.num_hidden_layers):
        src, dst = f"encoder.layer.{i}.", (f"layer_{i}",)
        qkv = tuple(f"{src}attention.attention.{name}" for name in ("query", "key", "value"))
        yield from _layer_norm((*dst, "layernorm_before"), f"{src}layernorm_before")
        yield from _dense((*dst, "attention", "qkv"), qkv, config.qkv_bias)
        yield from _dense((*dst, "attention", "out"), (f"{src}attention.output.dense",), True)
        yield from _layer_norm((*dst, "layernorm_after"), f"{src}layernorm_after")
        yield from _dense((*dst, "mlp", "fc1"), (f"{src}intermediate.dense",), True)
        yield from _dense((*dst, "mlp", "fc2"), (f"{src}output.dense",), True)
    yield from _layer_norm(("layernorm",), "layernorm")


def _rules(config: ASTConfig, with_head: bool) -> list[_Rule]:
    """Rules over canonical keys: backbone keys unprefixed, head keys `classifier.*`."""
    if not with_head:
        return list(_backbone_rules(config))
    rules = [_Rule(("backbone", *r.flax_path), r.hf_keys, r.kind) for r in _backbone_rules(config)]
    rules += _layer_norm(("classifier", "layernorm"), "classifier.layernorm")
    if config.num_labels > 0:  # else HF's head Dense is an identity without params
        rules += _dense(("classifier", "dense"), ("classifier.dense",), True)
    return rules


def _original_rules(config: ASTConfig, with_head: bool) -> list[_Rule]:
    """Rules over original keys without `module.` (docs/checkpoints.md, Original checkpoints)."""
    rules = [
        _Rule(("embeddings", "cls_token"), ("v.cls_token",), "copy"),
        _Rule(("embeddings", "distillation_token"), ("v.dist_token",), "copy"),
        _Rule(("embeddings", "position_embeddings"), ("v.pos_embed",), "copy"),
        _Rule(("embeddings", "patch_projection", "kernel"), ("v.patch_embed.proj.weight",), "conv"),
        _Rule(("embeddings", "patch_projection", "bias"), ("v.patch_embed.proj.bias",), "copy"),
    ]
    for i in range(config.num_hidden_layers):
        src, dst = f"v.blocks.{i}.", (f"layer_{i}",)
        rules += _layer_norm((*dst, "layernorm_before"), f"{src}norm1")
        # One timm key for the fused kernel: qkv.weight.T is (D, 3D) with columns [q | k | v].
        rules += _dense((*dst, "attention", "qkv"), (f"{src}attn.qkv",), config.qkv_bias)
        rules += _dense((*dst, "attention", "out"), (f"{src}attn.proj",), True)
        rules += _layer_norm((*dst, "layernorm_after"), f"{src}norm2")
        rules += _dense((*dst, "mlp", "fc1"), (f"{src}mlp.fc1",), True)
        rules += _dense((*dst, "mlp", "fc2"), (f"{src}mlp.fc2",), True)
    rules += _layer_norm(("layernorm",), "v.norm")
    if not with_head:
        return rules
    rules = [_Rule(("backbone", *r.flax_path), r.hf_keys, r.kind) for r in rules]
    rules += _layer_norm(("classifier", "layernorm"), "mlp_head.0")
    if config.num_labels > 0:
        rules += _dense(("classifier", "dense"), ("mlp_head.1",), True)
    return rules


def _canonical_key(key: str) -> str:
    """Strips the backbone prefix and maps transformers-5 in-memory names to on-disk names."""
    key = key.removeprefix(HF_PREFIX)
    for pattern, replacement in _V5_RENAMES:
        key, count = pattern.subn(replacement, key)
        if count:
            break
    return key


@dataclass
class ConversionReport:
    """What a conversion found besides the tensors it converted.

    Attributes:
        missing: keys the model needs that the state dict lacks (named as the checkpoint would).
        unexpected: keys of the state dict that the model has no use for.
        mismatched: `(key, shape in the state dict, shape the model needs)`.
        dropped_head: the head keys of a classifier state dict converted as a backbone.
        duplicates: keys present twice (with and without the backbone prefix).
        messages: every problem as one line, in the order found (for error messages).
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    dropped_head: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every model weight was found, with its shape, and nothing else was there."""
        return not (self.missing or self.unexpected or self.mismatched or self.duplicates)


def _canonical_state_dict(
    state_dict: Mapping[str, Any],
    with_head: bool,
    report: ConversionReport,
    *,
    canonical: Callable[[str], str],
    head_prefix: str,
    ignored: tuple[str, ...] = (),
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Returns (canonical key -> array, canonical key -> original key), with keys renamed by
    ``canonical``; keys starting with ``ignored`` are left out, head keys (``head_prefix``) too
    when ``with_head`` is False (into ``report.dropped_head``); duplicates go into ``report``."""
    arrays: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for key, value in state_dict.items():
        name = canonical(key)
        if ignored and name.startswith(ignored):
            continue
        if not with_head and name.startswith(head_prefix):
            # The backbone of a classifier checkpoint: the head is dropped on purpose.
            report.dropped_head.append(key)
            continue
        if name in arrays:
            report.duplicates.append(key)
            report.messages.append(f"duplicate: {origin[name]!r} and {key!r}")
            continue
        arrays[name], origin[name] = np.asarray(value), key
    return arrays, origin


def params_from_hf(
    state_dict: Mapping[str, Any], config: ASTConfig, *, with_head: bool = True
) -> dict[str, Any]:
    """Converts a Hugging Face AST state dict to ast-jax params (float32 NumPy leaves).

    Args:
        state_dict: HF key -> array in PyTorch layout (`ASTForAudioClassification` or `ASTModel`).
        config: the model config; fixes every expected key and shape.
        with_head: build `ASTForAudioClassification` params (else `ASTModel`; the `classifier.*`
            keys of a classifier checkpoint are then dropped).

    Returns:
        The params tree of `ASTForAudioClassification(config)` or `ASTModel(config)`.

    Raises:
        ValueError: naming every missing, unexpected or duplicate key and every shape mismatch.
    """
    flat, report = convert_hf_state_dict(state_dict, config, with_head=with_head)
    return _strict(flat, report, with_head)


def convert_hf_state_dict(
    state_dict: Mapping[str, Any],
    config: ASTConfig,
    *,
    with_head: bool = True,
    fill: Mapping[tuple[str, ...], Any] | None = None,
) -> tuple[dict[tuple[str, ...], np.ndarray], ConversionReport]:
    """Converts what a Hugging Face state dict holds and reports what it lacks, tolerantly.

    The lenient half of `params_from_hf`, for loading as transformers does (missing weights
    initialised, unused ones reported): nothing raises here.

    Args:
        state_dict: HF key -> array in PyTorch layout.
        config: the model config.
        with_head: convert to `ASTForAudioClassification` params (else `ASTModel`; a classifier
            state dict's head keys are then reported as `dropped_head`).
        fill: a flat params tree (path tuple -> array) of the same model whose values stand in
            for missing or mismatched weights. Only the missing parts of a fused leaf are taken
            from it (a checkpoint without `key.bias` keeps its query and value biases).

    Returns:
        `(flat params, report)`: flat params map path tuples to float32 arrays; leaves with
        missing or mismatched parts are absent unless `fill` is given.
    """
    report = ConversionReport()
    arrays, origin = _canonical_state_dict(
        state_dict, with_head, report, canonical=_canonical_key, head_prefix=_HEAD_PREFIX
    )

    def shown(key: str) -> str:
        return f"{HF_PREFIX if _is_backbone(key, with_head) else ''}{key}"

    flat = _convert(
        _rules(config, with_head), arrays, origin, config, with_head, shown, report, fill
    )
    return flat, report


def params_from_original(
    state_dict: Mapping[str, Any], config: ASTConfig, *, with_head: bool = True
) -> dict[str, Any]:
    """Converts an original YuanGongND/ast state dict (`*.pth`) to ast-jax params.

    Args:
        state_dict: original key -> array in PyTorch layout, keys with or without `module.`;
            DeiT's `v.head.*` and `v.head_dist.*` are dropped.
        config: the model config (see `ast_jax.checkpoints.original.original_config` to infer it).
        with_head: build `ASTForAudioClassification` params (else `ASTModel`; `mlp_head.*` is
            then dropped).

    Returns:
        The params tree of `ASTForAudioClassification(config)` or `ASTModel(config)`.

    Raises:
        ValueError: naming every missing, unexpected or duplicate key and every shape mismatch.
    """
    report = ConversionReport()
    arrays, origin = _canonical_state_dict(
        state_dict,
        with_head,
        report,
        canonical=lambda key: key.removeprefix(_ORIGINAL_PREFIX),
        head_prefix=_ORIGINAL_HEAD_PREFIX,
        ignored=_ORIGINAL_DROPPED,
    )
    flat = _convert(
        _original_rules(config, with_head),
        arrays,
        origin,
        config,
        with_head,
        lambda key: f"{_ORIGINAL_PREFIX}{key}",
        report,
    )
    return _strict(flat, report, with_head)


def _convert(
    rules: list[_Rule],
    arrays: Mapping[str, np.ndarray],
    origin: Mapping[str, str],
    config: ASTConfig,
    with_head: bool,
    shown: Callable[[str], str],
    report: ConversionReport,
    fill: Mapping[tuple[str, ...], Any] | None = None,
) -> dict[tuple[str, ...], np.ndarray]:
    """Builds flat params from canonical-key `arrays` by `rules`, checking every shape.

    `origin` maps canonical keys to the caller's keys, `shown` names a missing canonical key.
    Problems go into `report`; an incomplete leaf is left out, or completed from `fill`.
    """
    expected = flatten_dict(abstract_params(config, with_head=with_head))
    used: set[str] = set()
    flat: dict[tuple[str, ...], np.ndarray] = {}
    for rule in rules:
        want = expected[rule.flax_path]
        want_hf = [p.shape for p in rule.to_hf(np.broadcast_to(np.float32(0), want.shape))]
        parts: list[np.ndarray | None] = []
        for key, shape in zip(rule.hf_keys, want_hf, strict=True):
            if key not in arrays:
                report.missing.append(shown(key))
                report.messages.append(f"missing: {shown(key)}")
                parts.append(None)
                continue
            used.add(key)
            if arrays[key].shape != shape:
                got = tuple(arrays[key].shape)
                report.mismatched.append((origin[key], got, tuple(shape)))
                report.messages.append(f"shape mismatch: {origin[key]} is {got}, expected {shape}")
                parts.append(None)
                continue
            parts.append(arrays[key])
        if any(part is None for part in parts):
            if fill is None:
                continue
            fresh = rule.to_hf(np.asarray(fill[rule.flax_path], dtype=np.float32))
            parts = [new if part is None else part for part, new in zip(parts, fresh, strict=True)]
        flat[rule.flax_path] = np.asarray(rule.to_flax(parts), dtype=np.float32)
    for key in sorted(set(arrays) - used):
        report.unexpected.append(origin[key])
        report.messages.append(f"unexpected: {origin[key]}")
    return flat


def _strict(
    flat: dict[tuple[str, ...], np.ndarray], report: ConversionReport, with_head: bool
) -> dict[str, Any]:
    """The params tree of a complete conversion; anything missing, extra or misshapen raises."""
    if not report.complete:
        kind = "ASTForAudioClassification" if with_head else "ASTModel"
        raise ValueError(
            f"state dict does not match {kind} for this config:\n  " + "\n  ".join(report.messages)
        )
    return unflatten_dict(flat)


def _is_backbone(key: str, with_head: bool) -> bool:
    return with_head and not key.startswith(_HEAD_PREFIX)


def params_to_hf(params: Mapping[str, Any], config: ASTConfig) -> dict[str, np.ndarray]:
    """Converts ast-jax params to a Hugging Face state dict (on-disk key names, PyTorch layout).

    A classifier tree (`backbone` + `classifier`) gives `ASTForAudioClassification` keys with the
    `audio_spectrogram_transformer.` prefix; a backbone tree gives unprefixed `ASTModel` keys.

    Raises:
        ValueError: the tree does not match `config` (see `check_params`).
    """
    with_head = has_head(params)
    check_params(params, config, with_head=with_head)
    flat = flatten_dict(params)
    state_dict: dict[str, np.ndarray] = {}
    for rule in _rules(config, with_head):
        parts = rule.to_hf(np.asarray(flat[rule.flax_path], dtype=np.float32))
        for key, part in zip(rule.hf_keys, parts, strict=True):
            name = f"{HF_PREFIX}{key}" if _is_backbone(key, with_head) else key
            state_dict[name] = np.ascontiguousarray(part)
    return state_dict
