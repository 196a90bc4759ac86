"""Model configuration for the Audio Spectrogram Transformer.

`ASTConfig` mirrors the field names and defaults of Hugging Face's `ASTConfig`, so a `config.json`
from the hub round-trips, plus the label list and a compute-dtype policy. It is a frozen, hashable
dataclass, so it can be passed to `jax.jit` as a static argument. Like transformers' config it is
built from `num_labels=` / `id2label=` / `label2id=` as well as from `labels=`, and it reads and
writes `config.json` with `from_pretrained` / `save_pretrained` (local directories and hub ids).

Shape legend: T frames (`max_length`), F mel bins (`num_mel_bins`), N patches, D hidden.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ast_jax.files import read_json_object, write_json
from ast_jax.hub import resolve_file

__all__ = [
    "ATTENTIONS",
    "CONFIG_NAME",
    "DTYPES",
    "HIDDEN_ACTS",
    "LABEL_KEYWORDS",
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
CONFIG_NAME = "config.json"
# transformers' ways of naming the classes, accepted wherever `labels` is (constructor, `replace`,
# `from_pretrained` overrides): they set `labels`, which holds the names in logit order.
LABEL_KEYWORDS = ("num_labels", "id2label", "label2id")

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
            The constructor also takes transformers' `num_labels=` (generic names "LABEL_i"),
            `id2label=` and `label2id=` instead (see `LABEL_KEYWORDS`).
        problem_type: None or one of HF's problem types (used by the loss).
        output_attentions: the models' default for their `output_attentions` argument (as HF:
            stored in `config.json`, a call's argument overrides it).
        output_hidden_states: the models' default for their `output_hidden_states` argument.
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
    output_attentions: bool = False
    output_hidden_states: bool = False
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
        for name in ("qkv_bias", "output_attentions", "output_hidden_states"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
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
        """The number of classes, `len(labels)`."""
        return len(self.labels)

    @property
    def id2label(self) -> dict[int, str]:
        """Class index -> name, as transformers' `config.id2label`."""
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        """Class name -> index, as transformers' `config.label2id`."""
        return {label: i for i, label in enumerate(self.labels)}

    def replace(self, **changes: Any) -> ASTConfig:
        """A copy with `changes`: field values and transformers' label keywords.

        The config is frozen (it is a static `jax.jit` argument), so where transformers users
        assign (`config.num_labels = 3`), they write `config = config.replace(num_labels=3)`.
        `num_labels` alone keeps the current names when the count is unchanged and gives generic
        names ("LABEL_i") otherwise, as transformers does.

        Raises:
            ValueError: invalid or inconsistent values.
        """
        keywords = {key: changes.pop(key) for key in LABEL_KEYWORDS if key in changes}
        if keywords:
            current = changes.get("labels", self.labels)
            changes["labels"] = _merge_labels(current, "labels" in changes, **keywords)
        return replace(self, **changes)

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
            **overrides: field values that replace the file's (e.g. `dtype="bfloat16"`), and
                transformers' `num_labels` / `id2label` / `label2id`, which replace the file's
                labels as in `replace` (as transformers' `from_pretrained(..., num_labels=...)`).

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
        overrides = dict(overrides)
        keywords = {key: overrides.pop(key) for key in LABEL_KEYWORDS if key in overrides}
        kwargs.update(overrides)
        if keywords:
            kwargs["labels"] = _merge_labels(kwargs["labels"], "labels" in overrides, **keywords)
        return cls(**kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides: Any) -> ASTConfig:
        """transformers' name for `from_hf_dict`."""
        return cls.from_hf_dict(data, **overrides)

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

    def to_dict(self) -> dict[str, Any]:
        """transformers' name for `to_hf_dict`: the `config.json` contents."""
        return self.to_hf_dict()

    def to_json_string(self) -> str:
        """`to_dict()` as indented, key-sorted JSON text with a final newline."""
        return json.dumps(self.to_hf_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str], **overrides: Any) -> ASTConfig:
        """Reads a Hugging Face `config.json` (see `from_hf_dict`).

        Raises:
            FileNotFoundError: no such file.
            ValueError: invalid JSON or an invalid config; the message names the file.
        """
        data = read_json_object(path)
        try:
            return cls.from_hf_dict(data, **overrides)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: {error}") from error

    def to_json_file(self, path: str | os.PathLike[str]) -> None:
        """Writes `to_hf_dict()` as indented, key-sorted JSON, atomically."""
        write_json(path, self.to_hf_dict())

    def save_pretrained(self, directory: str | os.PathLike[str]) -> list[str]:
        """Writes `directory/config.json` (created if needed), as transformers' `save_pretrained`.

        Returns:
            The written file's path, in a list like `FeatureExtractor.save_pretrained`'s.
        """
        path = Path(directory) / CONFIG_NAME
        self.to_json_file(path)
        return [str(path)]

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike[str],
        *,
        subfolder: str = "",
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        force_download: bool = False,
        **overrides: Any,
    ) -> ASTConfig:
        """Reads `config.json` from a directory, a hub repo id or a JSON file path.

        Args:
            path_or_repo_id: a directory (ast-jax or Hugging Face), a hub id such as
                "MIT/ast-finetuned-audioset-10-10-0.4593", or the path of a JSON file.
            subfolder: the folder inside the directory or repo that holds `config.json`.
            revision: hub branch, tag or commit.
            cache_dir: the hub cache to use instead of huggingface_hub's default.
            local_files_only: use the hub cache only, never the network (also implied by
                `HF_HUB_OFFLINE=1` / `TRANSFORMERS_OFFLINE=1`).
            token: a hub token for private repos.
            force_download: download again even when cached.
            **overrides: as `from_hf_dict` (fields and label keywords).

        Raises:
            FileNotFoundError: no such directory, repo id or `config.json` (an `OSError`).
            OSError: the hub can be reached neither online nor in the cache.
            ValueError: invalid contents.
        """
        file = resolve_file(
            path_or_repo_id,
            CONFIG_NAME,
            revision=revision,
            subfolder=subfolder,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            force_download=force_download,
        )
        return cls.from_json_file(file, **overrides)

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


def _merge_labels(
    current: tuple[str, ...] | list[str] | None,
    explicit: bool,
    *,
    num_labels: int | None = None,
    id2label: Mapping[Any, str] | None = None,
    label2id: Mapping[str, Any] | None = None,
) -> tuple[str, ...]:
    """The labels that transformers' keywords ask for, given the `current` labels.

    `explicit`: `current` was passed in the same call, so keywords must agree with it rather than
    replace it. `num_labels` alone keeps `current` if the count is unchanged (as transformers keeps
    `id2label` when `num_labels` is set to its own length) and gives generic names otherwise.
    """
    if id2label is not None or label2id is not None:
        given = {"id2label": id2label, "label2id": label2id, "num_labels": num_labels}
        labels = _labels_from_hf({key: value for key, value in given.items() if value is not None})
        if explicit and current is not None and tuple(current) != labels:
            raise ValueError(f"labels {tuple(current)} disagree with id2label/label2id {labels}")
        return labels
    if num_labels is None:
        return tuple(current) if current is not None else _generic_labels(2)
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 0:
        raise ValueError(f"num_labels must be an int >= 0, got {num_labels!r}")
    if current is not None and len(current) == num_labels:
        return tuple(current)
    if explicit:
        raise ValueError(f"num_labels ({num_labels}) disagrees with labels ({len(current)} names)")
    return _generic_labels(num_labels)


def _accept_label_keywords(init: Callable[..., None]) -> Callable[..., None]:
    """The dataclass `__init__`, taking transformers' label keywords as well as `labels`."""

    @functools.wraps(init)
    def __init__(self: ASTConfig, **kwargs: Any) -> None:
        keywords = {key: kwargs.pop(key) for key in LABEL_KEYWORDS if key in kwargs}
        if keywords:
            kwargs["labels"] = _merge_labels(kwargs.get("labels"), "labels" in kwargs, **keywords)
        init(self, **kwargs)

    signature = inspect.signature(init)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, kind in zip(
            LABEL_KEYWORDS,
            ("int | None", "Mapping[int, str] | None", "Mapping[str, int] | None"),
            strict=True,
        )
    ]
    __init__.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *extra]
    )
    return __init__


ASTConfig.__init__ = _accept_label_keywords(ASTConfig.__init__)  # type: ignore[method-assign]


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
