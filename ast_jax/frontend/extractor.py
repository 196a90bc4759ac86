"""AST's feature extractor: Kaldi fbank, pad or truncate to ``max_length`` frames, normalise.

`FeatureExtractor` has the constructor arguments, defaults, call and ``preprocessor_config.json``
format of Hugging Face's ``ASTFeatureExtractor``, on top of the NumPy fbank in
`ast_jax.frontend.kaldi`.

Shape legend: B batch, S samples, T frames (``max_length``), F mel bins.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ast_jax.config import ASTConfig
from ast_jax.files import write_json
from ast_jax.frontend.kaldi import (
    FbankOptions,
    as_signal_array,
    check_value,
    fbank_stacked,
    samples_for_frames,
)

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


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeatureExtractor:
    """AST's feature extractor: Kaldi fbank, pad/truncate to ``max_length`` frames, normalise.

    Constructor arguments and defaults are those of Hugging Face's ``ASTFeatureExtractor``
    (AudioSet statistics, 1024 frames, 128 mel bins, 16 kHz). Differences, all deliberate:
    ``padding_value`` is honoured (HF always pads with 0.0; equal at the default), unknown call
    arguments raise instead of being ignored, ``return_attention_mask`` really returns a mask, and
    integer PCM is rejected instead of passed through unscaled.

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

    def __post_init__(self) -> None:
        check_value(self.feature_size == 1, "feature_size", self.feature_size, "1 (mono audio)")
        check_value(self.max_length > 0, "max_length", self.max_length, "> 0 frames")
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
        *,
        sampling_rate: int | None = None,
        return_num_frames: bool = False,
    ) -> dict[str, NDArray]:
        """Features for one clip or a batch.

        Args:
          raw_speech: one clip (1-D array or list of floats) or a batch (2-D array, one clip per
            row, or a list of 1-D arrays/lists of any lengths). Float audio in [-1, 1].
          sampling_rate: rate of ``raw_speech`` in Hz. Strongly recommended: a mismatch raises
            ``ValueError``; leaving it out only warns.
          return_num_frames: also return ``num_frames``.

        Returns:
          ``{"input_values": (B, max_length, num_mel_bins) float32}``, plus ``num_frames`` ``(B,)``
          int32 (real, unpadded frames kept) when requested and ``attention_mask``
          ``(B, max_length)`` int32 (1 on real frames) when ``return_attention_mask``.

        Raises:
          TypeError: integer, complex or non-numeric audio.
          ValueError: sampling-rate mismatch; empty, non-finite, >2-D or too-short audio.
        """
        self._check_sampling_rate(sampling_rate)
        clips = self._as_clips(raw_speech)
        features, counts = fbank_stacked(
            clips, self.fbank_options, name="raw_speech"
        )  # (N, F), (B,)
        # Clips were cut to max_length frames; scatter the stacked frames, then pad the rest.
        values = np.empty((counts.size, self.max_length, self.num_mel_bins), np.float32)
        first = np.cumsum(counts) - counts
        rows = np.repeat(np.arange(counts.size), counts)  # (N,)
        values[rows, np.arange(rows.size) - first[rows]] = features
        values[np.arange(self.max_length) >= counts[:, None]] = self.padding_value
        if self.do_normalize:
            # In float32 with float32 constants, as transformers computes it.
            np.subtract(values, np.float32(self.mean), out=values)
            np.divide(values, np.float32(2 * self.std), out=values)
        output = {"input_values": values}
        if return_num_frames:
            output["num_frames"] = counts.astype(np.int32)
        if self.return_attention_mask:
            output["attention_mask"] = (np.arange(self.max_length) < counts[:, None]).astype(
                np.int32
            )
        return output

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
            return array[..., :needed] if is_batch else [array[:needed]]
        if not is_batch:
            raw_speech = [raw_speech]
        clips = []
        for i, clip in enumerate(raw_speech):
            array = np.asarray(clip)
            if isinstance(clip, list | tuple):  # Python numbers: accepted whatever their type
                array = np.asarray(clip, dtype=np.float32)
            array = as_signal_array(array, f"raw_speech[{i}]").astype(np.float32, copy=False)
            if array.ndim != 1:
                raise ValueError(f"raw_speech[{i}] must be 1-D mono audio, got shape {array.shape}")
            clips.append(array[:needed])
        return clips

    # -- Hugging Face preprocessor_config.json -----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The ``preprocessor_config.json`` contents, in Hugging Face's format."""
        return {"feature_extractor_type": "ASTFeatureExtractor", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> FeatureExtractor:
        """Build from ``preprocessor_config.json`` contents; unknown keys raise ``ValueError``."""
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields - _HF_METADATA_KEYS)
        if unknown:
            raise ValueError(
                f"unknown feature-extractor config keys {unknown}; expected {sorted(fields)}"
            )
        kind = config.get("feature_extractor_type", "ASTFeatureExtractor")
        if kind != "ASTFeatureExtractor":
            raise ValueError(f"feature_extractor_type {kind!r} is not 'ASTFeatureExtractor'")
        return cls(**{key: value for key, value in config.items() if key in fields})

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> FeatureExtractor:
        """Read ``directory/preprocessor_config.json`` (Hugging Face format)."""
        path = Path(directory) / PREPROCESSOR_CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"no {PREPROCESSOR_CONFIG} in {directory}")
        with open(path, encoding="utf-8") as file:
            return cls.from_dict(json.load(file))

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/preprocessor_config.json`` atomically; returns its path."""
        path = Path(directory) / PREPROCESSOR_CONFIG
        write_json(path, self.to_dict())
        return path


def default_extractor(config: ASTConfig) -> FeatureExtractor:
    """The extractor for a model that ships none: AST's AudioSet statistics, the model's input
    size (``max_length`` frames of ``num_mel_bins`` bins)."""
    return FeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length)
