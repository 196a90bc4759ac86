"""AST's feature extractor: Kaldi fbank, pad or truncate to ``max_length`` frames, normalise.

`FeatureExtractor` has the constructor arguments, defaults, call and ``preprocessor_config.json``
format of Hugging Face's ``ASTFeatureExtractor``, on top of the NumPy fbank in
`ast_jax.frontend.kaldi`, and the conventions around it: ``return_tensors``, ``pad``,
``model_input_names``, JSON strings and files, and ``from_pretrained`` / ``save_pretrained`` with
local directories and hub ids.

Shape legend: B batch, S samples, T frames (``max_length``), F mel bins.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ast_jax.config import ASTConfig
from ast_jax.files import read_json_object, write_json
from ast_jax.frontend.audio import check_peak
from ast_jax.frontend.batch import BatchFeature
from ast_jax.frontend.kaldi import (
    FbankOptions,
    as_signal_array,
    check_value,
    fbank_stacked,
    samples_for_frames,
)
from ast_jax.hub import resolve_file

__all__ = ["PREPROCESSOR_CONFIG", "PRESETS", "FeatureExtractor", "default_extractor"]

# Normalisation statistics published with AST (docs/numerics.md, Dataset statistics): log-mel
# mean/std and target length.
PRESETS: dict[str, dict[str, float | int]] = {
    "audioset": {"mean": -4.2677393, "std": 4.5689974, "max_length": 1024},
    "esc50": {"mean": -6.6268077, "std": 5.358466, "max_length": 512},
    "speech_commands": {"mean": -6.845978, "std": 5.5654526, "max_length": 128},
}

PREPROCESSOR_CONFIG = "preprocessor_config.json"
# Keys Hugging Face writes that carry no information for us.
_HF_METADATA_KEYS = frozenset({"feature_extractor_type", "processor_class"})


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeatureExtractor:
    """AST's feature extractor: Kaldi fbank, pad/truncate to ``max_length`` frames, normalise.

    Constructor arguments and defaults are those of Hugging Face's ``ASTFeatureExtractor``
    (AudioSet statistics, 1024 frames, 128 mel bins, 16 kHz). Differences, all deliberate:
    ``padding_value`` is honoured (HF always pads with 0.0; equal at the default), unknown call
    arguments raise instead of being ignored (and ``padding`` / ``truncation`` values asking for
    something other than ``max_length`` frames raise), ``return_attention_mask`` really returns a
    mask, integer PCM (and float audio with a peak above 1.5, integer PCM stored as float) is
    rejected instead of passed through unscaled, and ``return_tensors=None``
    gives one NumPy batch rather than a list of per-clip arrays.

    Pipeline per clip: fbank with ``window_type="hanning"``, ``sample_frequency=sampling_rate``,
    ``num_mel_bins`` and torchaudio's other defaults; keep the first ``max_length`` frames or append
    ``padding_value`` rows (in the log-mel domain, before normalising); then, if ``do_normalize``,
    ``(x - mean) / (2 * std)`` (twice the std: AST targets a std of 0.5).
    """

    feature_size: int = 1
    sampling_rate: int = 16000
    num_mel_bins: int = 128
    max_length: int = 1024
    padding_value: float = 0.0
    do_normalize: bool = True
    mean: float = -4.2677393
    std: float = 4.5689974
    return_attention_mask: bool = False
    padding_side: Literal["right"] = "right"

    # As transformers' extractor: the model's input first (what `pad` pads), then the mask.
    model_input_names: ClassVar[tuple[str, ...]] = ("input_values", "attention_mask")

    def __post_init__(self) -> None:
        for name in ("feature_size", "sampling_rate", "num_mel_bins", "max_length"):
            value = getattr(self, name)
            check_value(_is_int(value) and value > 0, name, value, "an integer > 0")
        for name in ("padding_value", "mean", "std"):
            value = getattr(self, name)
            check_value(_is_real(value) and math.isfinite(value), name, value, "a finite number")
        check_value(self.feature_size == 1, "feature_size", self.feature_size, "1 (mono audio)")
        check_value(self.std > 0, "std", self.std, "> 0")
        check_value(self.padding_side == "right", "padding_side", self.padding_side, "'right'")
        self.fbank_options  # validates sampling_rate and num_mel_bins  # noqa: B018

    @property
    def fbank_options(self) -> FbankOptions:
        """The fbank options AST uses (docs/numerics.md, Options AST uses)."""
        return FbankOptions(
            sample_frequency=float(self.sampling_rate),
            window_type="hanning",
            num_mel_bins=self.num_mel_bins,
        )

    @property
    def samples_needed(self) -> int:
        """Samples the first ``max_length`` frames read; later samples never reach the model."""
        return samples_for_frames(self.max_length, self.fbank_options)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> FeatureExtractor:
        """Extractor with a dataset's published statistics: one of ``PRESETS``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def __call__(
        self,
        raw_speech: ArrayLike | Sequence[ArrayLike],
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        *,
        padding: bool | str = "max_length",
        truncation: bool = True,
        return_num_frames: bool = False,
    ) -> BatchFeature:
        """Features for one clip or a batch.

        Args:
          raw_speech: one clip (1-D array or list of floats) or a batch (2-D array, one clip per
            row, or a list of 1-D arrays/lists of any lengths). Float audio in [-1, 1].
          sampling_rate: rate of ``raw_speech`` in Hz. Strongly recommended: a mismatch raises
            ``ValueError``; leaving it out only warns.
          return_tensors: None or ``"np"`` for NumPy arrays, ``"jax"`` for `jax.Array`, ``"pt"``
            for `torch.Tensor` (needs torch).
          padding: what transformers callers pass; AST always pads to ``max_length`` frames, so
            True and ``"max_length"`` are accepted and anything else raises.
          truncation: likewise: True (every clip is cut to ``max_length`` frames).
          return_num_frames: also return ``num_frames``.

        Returns:
          A `BatchFeature` with ``input_values`` ``(B, max_length, num_mel_bins)`` float32, plus
          ``num_frames`` ``(B,)`` int32 (real, unpadded frames kept) when requested and
          ``attention_mask`` ``(B, max_length)`` int32 (1 on real frames) when
          ``return_attention_mask``.

        Raises:
          TypeError: integer, complex or non-numeric audio; an unknown argument.
          ValueError: sampling-rate mismatch; empty, non-finite, >2-D or too-short audio; a
            ``padding``/``truncation`` other than AST's; an unknown ``return_tensors``.
        """
        _check_fixed_length(padding, truncation, self.max_length)
        self._check_sampling_rate(sampling_rate)
        clips = self._as_clips(raw_speech)
        features, counts = fbank_stacked(
            clips, self.fbank_options, name="raw_speech"
        )  # (N, F), (B,)
        # Clips were cut to max_length frames: each clip's rows, then padding rows.
        values = np.empty((counts.size, self.max_length, self.num_mel_bins), np.float32)
        for clip, (first, count) in enumerate(zip(np.cumsum(counts) - counts, counts, strict=True)):
            self._normalize(features[first : first + count], out=values[clip, :count])
            self._normalize(np.float32(self.padding_value), out=values[clip, count:])
        output = {"input_values": values}
        if return_num_frames:
            output["num_frames"] = counts.astype(np.int32)
        if self.return_attention_mask:
            output["attention_mask"] = (np.arange(self.max_length) < counts[:, None]).astype(
                np.int32
            )
        return BatchFeature(output, tensor_type=return_tensors)

    def _normalize(
        self, features: NDArray[np.float32] | np.float32, out: NDArray[np.float32]
    ) -> None:
        """``out = (features - mean) / (2 std)`` when ``do_normalize``, else a copy; clip by clip,
        so each clip's rows are normalised while in cache. In float32 with float32 constants,
        as transformers computes it."""
        if not self.do_normalize:
            out[...] = features
            return
        np.subtract(features, np.float32(self.mean), out=out)
        np.divide(out, np.float32(2 * self.std), out=out)

    def pad(
        self,
        processed_features: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        padding: bool | str = True,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
    ) -> BatchFeature:
        """Pads (and cuts) a batch of raw waveforms to one length, as transformers' `pad`.

        This works on the model input's raw values (``model_input_names[0]``, the waveform
        samples), not on features: it is the batching step of transformers' sequence extractors.
        Samples are appended on the right with ``padding_value``.

        Args:
          processed_features: ``{"input_values": [clip, ...], ...}`` (a dict or `BatchFeature`)
            or a list of ``{"input_values": clip, ...}``, each clip a 1-D array or list of floats;
            an ``attention_mask`` given alongside is cut and padded with it.
          padding: True or ``"longest"`` (to the longest clip), ``"max_length"`` (to
            ``max_length``), False or ``"do_not_pad"``.
          max_length: the length for ``padding="max_length"`` and for truncation.
          truncation: cut clips longer than ``max_length`` (rounded up to
            ``pad_to_multiple_of``).
          pad_to_multiple_of: round the padded length up to a multiple of this.
          return_attention_mask: also return ``attention_mask`` (1 on real samples); None for
            the extractor's ``return_attention_mask``.
          return_tensors: None for a 2-D array when all clips end up equally long and a list of
            1-D arrays otherwise; ``"np"``, ``"jax"`` or ``"pt"`` for one tensor (a batch of
            unequal lengths then raises: transformers makes a NumPy object array of it).

        Returns:
          A `BatchFeature`; float64 values become float32.

        Raises:
          ValueError: ``padding="max_length"`` or ``truncation=True`` without ``max_length``, an
            unknown padding strategy, inconsistent batch sizes, or unequal lengths with
            ``return_tensors``.
        """
        name = self.model_input_names[0]
        features = _feature_lists(processed_features, name)
        strategy = _padding_strategy(padding, max_length)
        with_mask = (
            self.return_attention_mask
            if return_attention_mask is None
            else bool(return_attention_mask)
        )
        batch = len(features[name])
        masks = features.get("attention_mask")
        if with_mask and masks is None:
            masks = [np.ones(len(values), np.int32) for values in features[name]]
        if truncation:
            if max_length is None:
                raise ValueError("truncation=True needs max_length, the length to cut clips to")
            limit = _round_up(max_length, pad_to_multiple_of)
            features[name] = [values[:limit] for values in features[name]]
            if masks is not None:
                masks = [mask[:limit] for mask in masks]
        target = None
        if strategy == "longest":
            target = max((len(values) for values in features[name]), default=0)
        elif strategy == "max_length":
            target = max_length
        if target is not None:
            target = _round_up(target, pad_to_multiple_of)
        padded, padded_masks = [], []
        for i in range(batch):
            values = features[name][i]
            missing = 0 if target is None else max(target - len(values), 0)
            padded.append(
                np.pad(values, (0, missing), constant_values=self.padding_value)
                if missing
                else values
            )
            if masks is not None:
                padded_masks.append(np.pad(masks[i], (0, missing)) if missing else masks[i])
        output: dict[str, Any] = {**features, name: padded}
        if masks is not None:  # requested, or given by the caller: cut and padded with the values
            output["attention_mask"] = padded_masks
        for key, rows in output.items():
            rows = [r.astype(np.float32) if r.dtype == np.float64 else r for r in rows]
            if return_tensors is None and len({len(r) for r in rows}) <= 1 and rows:
                output[key] = np.stack(rows)
            else:
                output[key] = rows
        return BatchFeature(output, tensor_type=return_tensors)

    def _check_sampling_rate(self, sampling_rate: int | None) -> None:
        if sampling_rate is None:
            warnings.warn(
                "FeatureExtractor was called without sampling_rate; pass it so that audio at the "
                f"wrong rate is caught (this extractor expects {self.sampling_rate} Hz)",
                stacklevel=3,
            )
        elif sampling_rate != self.sampling_rate:
            raise ValueError(
                f"the model was trained on audio sampled at {self.sampling_rate} Hz; got audio at "
                f"{sampling_rate} Hz. Resample it to {self.sampling_rate} Hz first"
            )

    def _as_clips(self, raw_speech: Any) -> NDArray | list[NDArray]:
        """HF's batching rules: a 2-D array or a list of sequences is a batch, anything else a clip.

        Clips become float32 (as HF), truncated to the samples the first ``max_length`` frames
        need, which makes long audio cheap and changes nothing in the kept frames.
        """
        needed = self.samples_needed
        is_batch = (isinstance(raw_speech, np.ndarray) and raw_speech.ndim == 2) or (
            isinstance(raw_speech, list | tuple)
            and len(raw_speech) > 0
            and isinstance(raw_speech[0], np.ndarray | list | tuple)
        )
        if isinstance(raw_speech, np.ndarray) and raw_speech.ndim > 2:
            raise ValueError(
                f"only mono audio is supported: expected a clip (S,) or a batch (B, S), got shape "
                f"{raw_speech.shape}"
            )
        if isinstance(raw_speech, np.ndarray):
            array = as_signal_array(raw_speech, "raw_speech").astype(np.float32, copy=False)
            check_peak(array, "raw_speech")  # as_signal_array refused NaN and inf
            return array[..., :needed] if is_batch else [array[:needed]]
        if not is_batch:
            raw_speech = [raw_speech]
        clips = []
        for i, clip in enumerate(raw_speech):
            array = np.asarray(clip)
            if isinstance(clip, list | tuple):  # Python numbers: accepted whatever their type
                array = np.asarray(clip, dtype=np.float32)
            array = as_signal_array(array, f"raw_speech[{i}]").astype(np.float32, copy=False)
            check_peak(array, f"raw_speech[{i}]")
            if array.ndim != 1:
                raise ValueError(f"raw_speech[{i}] must be 1-D mono audio, got shape {array.shape}")
            clips.append(array[:needed])
        return clips

    # -- Hugging Face preprocessor_config.json -----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The ``preprocessor_config.json`` contents, in Hugging Face's format."""
        return {"feature_extractor_type": "ASTFeatureExtractor", **dataclasses.asdict(self)}

    def to_json_string(self) -> str:
        """`to_dict()` as indented, key-sorted JSON text with a final newline."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str | os.PathLike) -> None:
        """Write `to_dict()` to ``path`` as JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], **overrides: Any) -> FeatureExtractor:
        """Build from ``preprocessor_config.json`` contents; unknown keys raise ``ValueError``.

        Args:
          config: the parsed JSON object.
          **overrides: constructor arguments that replace the file's, e.g. ``max_length=512``
            (as transformers' keyword arguments to ``from_pretrained``).
        """
        fields = {field.name for field in dataclasses.fields(cls)}
        merged = {**config, **overrides}
        unknown = sorted(set(merged) - fields - _HF_METADATA_KEYS)
        if unknown:
            raise ValueError(
                f"unknown feature-extractor config keys {unknown}; expected {sorted(fields)}"
            )
        kind = merged.get("feature_extractor_type", "ASTFeatureExtractor")
        if kind != "ASTFeatureExtractor":
            raise ValueError(f"feature_extractor_type {kind!r} is not 'ASTFeatureExtractor'")
        return cls(**{key: value for key, value in merged.items() if key in fields})

    @classmethod
    def from_json_file(cls, path: str | os.PathLike, **overrides: Any) -> FeatureExtractor:
        """Build from a JSON file of `to_dict()`'s format (see `from_dict`).

        Raises:
          FileNotFoundError: no such file.
          ValueError: invalid JSON or invalid settings; the message names the file.
        """
        data = read_json_object(path)
        try:
            return cls.from_dict(data, **overrides)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: {error}") from error

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        *,
        subfolder: str = "",
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        force_download: bool = False,
        **overrides: Any,
    ) -> FeatureExtractor:
        """Read ``preprocessor_config.json`` (Hugging Face format) from a directory, a hub repo id
        or a JSON file path.

        Args:
          path_or_repo_id: a directory, a hub id such as
            "MIT/ast-finetuned-audioset-10-10-0.4593", or the path of a JSON file.
          subfolder: the folder inside the directory or repo that holds the file.
          revision: hub branch, tag or commit.
          cache_dir: the hub cache to use instead of huggingface_hub's default.
          local_files_only: use the hub cache only, never the network (also implied by
            ``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1``).
          token: a hub token for private repos.
          force_download: download again even when cached.
          **overrides: constructor arguments that replace the file's (see `from_dict`).

        Raises:
          FileNotFoundError: no such directory or repo id, or no ``preprocessor_config.json``.
          OSError: the hub can be reached neither online nor in the cache.
          ValueError: unknown keys or invalid values.
        """
        file = resolve_file(
            path_or_repo_id,
            PREPROCESSOR_CONFIG,
            revision=revision,
            subfolder=subfolder,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            force_download=force_download,
        )
        return cls.from_json_file(file, **overrides)

    def save_pretrained(self, directory: str | os.PathLike) -> list[str]:
        """Write ``directory/preprocessor_config.json`` atomically (the directory is created if
        needed).

        Returns:
          The written files' paths, as transformers' ``save_pretrained`` returns them.
        """
        path = Path(directory) / PREPROCESSOR_CONFIG
        write_json(path, self.to_dict())
        return [str(path)]


_PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")


def _check_fixed_length(padding: Any, truncation: Any, max_length: int) -> None:
    """AST's call pads and truncates to ``max_length`` frames: accept what says so, refuse the rest
    (transformers ignores both arguments)."""
    name = str(getattr(padding, "value", padding))
    if padding is not True and name != "max_length":
        raise ValueError(
            f"padding={padding!r}: AST's extractor always pads to max_length={max_length} frames "
            "(padding=True or 'max_length'); build a FeatureExtractor(max_length=...) for another "
            "length, or use pad() to batch raw waveforms"
        )
    if truncation is not True:
        raise ValueError(
            f"truncation={truncation!r}: AST's extractor always cuts clips to max_length="
            f"{max_length} frames (truncation=True); classify long audio in windows "
            "(ast_jax.AudioClassifier) to see all of it"
        )


def _padding_strategy(padding: Any, max_length: int | None) -> str:
    """transformers' padding argument as one of ``_PADDING_STRATEGIES``."""
    if padding is True:
        strategy = "longest"
    elif padding is False:
        strategy = "do_not_pad"
    else:
        strategy = str(getattr(padding, "value", padding))
        if strategy not in _PADDING_STRATEGIES:
            raise ValueError(
                f"padding must be True, False or one of {_PADDING_STRATEGIES}, got {padding!r}"
            )
    if strategy == "max_length" and max_length is None:
        raise ValueError("padding='max_length' needs max_length, the length to pad to")
    return strategy


def _round_up(length: int, multiple: int | None) -> int:
    if multiple is None or length % multiple == 0:
        return length
    return (length // multiple + 1) * multiple


def _feature_lists(
    processed_features: Mapping[str, Any] | Sequence[Mapping[str, Any]], name: str
) -> dict[str, list[np.ndarray]]:
    """``{key: [1-D array per example]}`` from a dict of batches or a list of example dicts."""
    if isinstance(processed_features, Sequence) and not isinstance(processed_features, Mapping):
        examples = list(processed_features)
        if not all(isinstance(example, Mapping) for example in examples):
            raise ValueError("pad() takes a dict of batches or a list of dicts, one per example")
        keys = examples[0].keys() if examples else [name]
        processed_features = {key: [example[key] for example in examples] for key in keys}
    if name not in processed_features:
        raise ValueError(
            f"pad() needs the model input {name!r}; got keys {sorted(processed_features)}"
        )
    features: dict[str, list[np.ndarray]] = {}
    for key, batch in processed_features.items():
        if isinstance(batch, np.ndarray) and batch.ndim == 1:
            batch = [batch]
        rows = [np.asarray(row) for row in batch]
        if any(row.ndim != 1 for row in rows):
            raise ValueError(f"pad() pads mono waveforms: every {key!r} row must be 1-D")
        features[key] = rows
    sizes = {key: len(rows) for key, rows in features.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"the batch sizes of the inputs differ: {sizes}")
    return features


def default_extractor(config: ASTConfig) -> FeatureExtractor:
    """The extractor for a model that ships none: AST's AudioSet statistics, the model's input
    size (``max_length`` frames of ``num_mel_bins`` bins)."""
    return FeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length)
