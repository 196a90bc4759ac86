"""Model configuration for the Audio Spectrogram Transformer.

`ASTConfig` mirrors the field names and defaults of Hugging Face's `ASTConfig`, so a `config.json`
from the hub round-trips, plus the label list and a compute-dtype policy. It is a frozen, hashable
dataclass, so it can be passed to `jax.jit` as a static argument.

Shape legend: T frames (`max_length`), F mel bins (`num_mel_bins`), N patches, D hidden.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = [
    "ATTENTIONS",
    "DTYPES",
    "HIDDEN_ACTS",
    "PRESETS",
    "PROBLEM_TYPES",
    "TIMM_LAYER_NORM_EPS",
    "ASTConfig",
]

HIDDEN_ACTS = ("gelu", "gelu_new", "relu", "selu")
DTYPES = ("float32", "bfloat16", "float16")
# Attention kernels (`ast_jax.model.attention`): "xla" and "cudnn" are
# `jax.nn.dot_product_attention`'s implementations, "per_head" a loop over (batch, head) pairs for
# CPUs; "auto" is resolved to one of them by `resolve_attention` for the platform a program runs on.
ATTENTIONS = ("auto", "xla", "cudnn", "per_head")
# Runtime choices, not model facts: never read from or written to `config.json`.
_RUNTIME_FIELDS = ("labels", "dtype", "attention")
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")

# Keys a Hugging Face `config.json` may carry that describe the PyTorch side, not the model.
# `dtype`/`torch_dtype` is the storage dtype of the torch weights; our params are always float32
# and the compute dtype is a runtime choice, so both are ignored on purpose.
_HF_GENERIC_KEYS = frozenset(
    {
        "_name_or_path",
        "architectures",
        "model_type",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "return_dict",
        "output_hidden_states",
        "output_attentions",
        "torchscript",
        "pruned_heads",
        "tie_word_embeddings",
        "chunk_size_feed_forward",
        "is_encoder_decoder",
        "is_decoder",
        "finetuning_task",
        "use_bfloat16",
        "_attn_implementation",
        "_attn_implementation_autoset",
    }
)
# The first hub uploads used these names; transformers renamed them.
_OLD_NAMES = {"frequency_dimension": "num_mel_bins", "time_dimension": "max_length"}
_MODEL_TYPE = "audio-spectrogram-transformer"
# The original (timm 0.4.5) model's epsilons: timm's ViT default for the blocks and final norm,
# PyTorch's LayerNorm default for the `mlp_head` norm (docs/checkpoints.md, LayerNorm epsilons).
# Pass as `**overrides`.
TIMM_LAYER_NORM_EPS: Mapping[str, float] = {"layer_norm_eps": 1e-6, "head_layer_norm_eps": 1e-5}


def _generic_labels(num_labels: int) -> tuple[str, ...]:
    return tuple(f"LABEL_{i}" for i in range(num_labels))


@dataclass(frozen=True, kw_only=True)
class ASTConfig:
    """Hyper-parameters of an AST model (Hugging Face names and defaults).

    Attributes:
        hidden_size: D, the token width.
        num_hidden_layers: number of pre-LayerNorm transformer blocks.
        num_attention_heads: heads per block; must divide `hidden_size`.
        intermediate_size: MLP width.
        hidden_act: MLP activation, one of `HIDDEN_ACTS`. "gelu" is the exact erf GELU.
        hidden_dropout_prob: dropout on embeddings, attention output and MLP output.
        attention_probs_dropout_prob: dropout on attention probabilities.
        initializer_range: std of the truncated-normal init of kernels.
        layer_norm_eps: epsilon of the block and final LayerNorms (HF uses 1e-12 everywhere).
        head_layer_norm_eps: epsilon of the classifier head's LayerNorm; None for
            `layer_norm_eps` (HF). The original timm model uses 1e-6 for the blocks and final
            norm and PyTorch's default 1e-5 for the head (`TIMM_LAYER_NORM_EPS`).
        patch_size: square patch (conv kernel) size.
        qkv_bias: whether the query/key/value projection has a bias.
        frequency_stride: conv stride along the mel axis.
        time_stride: conv stride along the frame axis.
        max_length: T, the exact number of input frames.
        num_mel_bins: F, the number of mel bins per frame.
        labels: class names in logit order; `num_labels = len(labels)` (0: no classifier Dense).
        problem_type: None or one of HF's problem types (used by the loss).
        dtype: compute dtype, one of `DTYPES`. Params are always stored in float32; LayerNorm
            statistics, softmax and logits stay float32.
        attention: the attention kernel, one of `ATTENTIONS` (a runtime choice like `dtype`;
            `output_attentions`, attention dropout and float16 use an explicit softmax).
    """

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    head_layer_norm_eps: float | None = None
    patch_size: int = 16
    qkv_bias: bool = True
    frequency_stride: int = 10
    time_stride: int = 10
    max_length: int = 1024
    num_mel_bins: int = 128
    labels: tuple[str, ...] = _generic_labels(2)
    problem_type: str | None = None
    dtype: str = "float32"
    attention: str = "auto"

    def __post_init__(self) -> None:
        # Accept any sequence of names but store a tuple so the config stays hashable.
        object.__setattr__(self, "labels", tuple(self.labels))
        for name in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "patch_size",
            "frequency_stride",
            "time_stride",
            "max_length",
            "num_mel_bins",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        for name in ("num_mel_bins", "max_length"):
            if getattr(self, name) < self.patch_size:
                raise ValueError(
                    f"{name} must be >= patch_size ({self.patch_size}), got {getattr(self, name)}"
                )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if self.head_layer_norm_eps is not None and not self.head_layer_norm_eps > 0:
            raise ValueError(
                f"head_layer_norm_eps must be None or > 0, got {self.head_layer_norm_eps!r}"
            )
        if not self.initializer_range >= 0:
            raise ValueError(f"initializer_range must be >= 0, got {self.initializer_range!r}")
        if not isinstance(self.qkv_bias, bool):
            raise ValueError(f"qkv_bias must be a bool, got {self.qkv_bias!r}")
        if self.hidden_act not in HIDDEN_ACTS:
            raise ValueError(f"hidden_act must be one of {HIDDEN_ACTS}, got {self.hidden_act!r}")
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(
                f"problem_type must be one of {PROBLEM_TYPES}, got {self.problem_type!r}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if not all(isinstance(label, str) for label in self.labels):
            raise ValueError(f"labels must all be str, got {self.labels!r}")

    # ---- derived sizes --------------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        """Width of one attention head, D / H."""
        return self.hidden_size // self.num_attention_heads

    @property
    def f_dim(self) -> int:
        """Patch rows along frequency: floor((F - patch) / frequency_stride) + 1."""
        return (self.num_mel_bins - self.patch_size) // self.frequency_stride + 1

    @property
    def t_dim(self) -> int:
        """Patch columns along time: floor((T - patch) / time_stride) + 1."""
        return (self.max_length - self.patch_size) // self.time_stride + 1

    @property
    def num_patches(self) -> int:
        """N = f_dim * t_dim."""
        return self.f_dim * self.t_dim

    @property
    def seq_len(self) -> int:
        """Tokens per example: N patches plus the cls and distillation tokens."""
        return self.num_patches + 2

    @property
    def classifier_layer_norm_eps(self) -> float:
        """Epsilon of the head's LayerNorm: `head_layer_norm_eps`, else `layer_norm_eps`."""
        return self.layer_norm_eps if self.head_layer_norm_eps is None else self.head_layer_norm_eps

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    # ---- Hugging Face config.json ---------------------------------------------------------------

    @classmethod
    def from_hf_dict(cls, data: Mapping[str, Any], **overrides: Any) -> ASTConfig:
        """Builds a config from a Hugging Face `config.json` dict.

        Old names `frequency_dimension`/`time_dimension` are mapped to `num_mel_bins`/`max_length`.
        Generic HF keys describing the PyTorch side are ignored; other unknown keys trigger a
        warning naming them. Labels come from `id2label` (else `label2id`, else `num_labels`, else
        HF's default of two generic labels).

        Args:
            data: the parsed JSON object.
            **overrides: field values that replace the file's (e.g. `dtype="bfloat16"`).

        Raises:
            ValueError: inconsistent labels, or any invalid field value.
        """
        data = {_OLD_NAMES.get(key, key): value for key, value in data.items()}
        field_names = {f.name for f in fields(cls)} - set(_RUNTIME_FIELDS)
        kwargs = {key: data[key] for key in field_names if key in data}
        if isinstance(kwargs.get("patch_size"), (list, tuple)):
            kwargs["patch_size"] = _square_patch(kwargs["patch_size"])
        kwargs["labels"] = _labels_from_hf(data)
        label_keys = {"id2label", "label2id", "num_labels"}
        unknown = sorted(set(data) - field_names - label_keys - _HF_GENERIC_KEYS)
        if unknown:
            warnings.warn(f"ASTConfig ignores unknown config keys: {unknown}", stacklevel=2)
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_hf_dict(self) -> dict[str, Any]:
        """Returns a `config.json` dict that transformers' `ASTConfig` reads.

        The compute `dtype` and `attention` are not written: they are runtime choices, and HF
        reads a `dtype` key as the storage dtype of the weights. `head_layer_norm_eps` is written
        only when set (the timm-exact mode); transformers ignores it and uses `layer_norm_eps` for
        the head.
        """
        skip = _RUNTIME_FIELDS + (
            ("head_layer_norm_eps",) if self.head_layer_norm_eps is None else ()
        )
        data: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip
        }
        data["id2label"] = {str(i): label for i, label in self.id2label.items()}
        data["label2id"] = self.label2id
        data["model_type"] = _MODEL_TYPE
        return data

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str], **overrides: Any) -> ASTConfig:
        """Reads a Hugging Face `config.json` (see `from_hf_dict`)."""
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
        return cls.from_hf_dict(data, **overrides)

    def to_json_file(self, path: str | os.PathLike[str]) -> None:
        """Writes `to_hf_dict()` as indented, key-sorted JSON."""
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.to_hf_dict(), file, indent=2, sort_keys=True)
            file.write("\n")

    # ---- presets ---------------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ASTConfig:
        """Config of a published MIT checkpoint, e.g. "MIT/ast-finetuned-audioset-10-10-0.4593".

        Raises:
            ValueError: unknown preset name.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


def _square_patch(patch_size: list[int] | tuple[int, ...]) -> int:
    if len(patch_size) != 2 or patch_size[0] != patch_size[1]:
        raise ValueError(f"only square patches are supported, got patch_size={list(patch_size)}")
    return int(patch_size[0])


def _labels_from_hf(data: Mapping[str, Any]) -> tuple[str, ...]:
    """Label names in index order from `id2label` / `label2id` / `num_labels`."""
    # Presence, not truthiness: `{}` is a valid id2label (num_labels == 0, no classifier Dense).
    if data.get("id2label") is not None:
        by_index = {int(i): str(label) for i, label in data["id2label"].items()}
    elif data.get("label2id") is not None:
        by_index = {int(i): str(label) for label, i in data["label2id"].items()}
    else:
        return _generic_labels(int(data.get("num_labels", 2)))
    if sorted(by_index) != list(range(len(by_index))):
        raise ValueError(f"label ids must be 0..{len(by_index) - 1}, got {sorted(by_index)}")
    labels = tuple(by_index[i] for i in range(len(by_index)))
    if "num_labels" in data and int(data["num_labels"]) != len(labels):
        raise ValueError(
            f"num_labels ({data['num_labels']}) disagrees with id2label ({len(labels)} labels)"
        )
    return labels


# Speech Commands V2-35 class order, as in the MIT checkpoint's config (docs/checkpoints.md,
# Published checkpoints).
SPEECH_COMMANDS_LABELS = (
    "backward", "follow", "five", "bed", "zero", "on", "learn", "two", "house", "tree", "dog",
    "stop", "seven", "eight", "down", "six", "forward", "cat", "right", "visual", "four", "wow",
    "no", "nine", "off", "three", "left", "marvin", "yes", "up", "sheila", "happy", "bird", "go",
    "one",
)  # fmt: skip
# No AudioSet ontology ships with the package; the 527 classes get generic names (the hub config has
# the real ones, and `load_pretrained` reads them from there).
_AUDIOSET_LABELS = _generic_labels(527)


def _audioset(stride: int) -> ASTConfig:
    return ASTConfig(frequency_stride=stride, time_stride=stride, labels=_AUDIOSET_LABELS)


PRESETS: Mapping[str, ASTConfig] = {
    "MIT/ast-finetuned-audioset-10-10-0.4593": _audioset(10),
    "MIT/ast-finetuned-audioset-10-10-0.450": _audioset(10),
    "MIT/ast-finetuned-audioset-10-10-0.448": _audioset(10),
    "MIT/ast-finetuned-audioset-10-10-0.448-v2": _audioset(10),
    "MIT/ast-finetuned-audioset-12-12-0.447": _audioset(12),
    "MIT/ast-finetuned-audioset-14-14-0.443": _audioset(14),
    "MIT/ast-finetuned-audioset-16-16-0.442": _audioset(16),
    "MIT/ast-finetuned-speech-commands-v2": ASTConfig(
        max_length=128, labels=SPEECH_COMMANDS_LABELS
    ),
}
