"""Reading audio files into the float mono waveforms the feature extractor expects.

Any format libsndfile reads (wav, flac, ogg; mp3 with libsndfile >= 1.1). Integer PCM is scaled to
[-1, 1] by the decoder, multi-channel audio is averaged to mono, and audio at another rate is
resampled with soxr's high-quality (VHQ) resampler.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile
import soxr
from numpy.typing import NDArray

__all__ = ["load_audio"]


def load_audio(path: str | os.PathLike, sampling_rate: int = 16000) -> NDArray[np.float32]:
    """Read an audio file as a mono float32 waveform ``(S,)`` in [-1, 1] at ``sampling_rate`` Hz.

    Args:
      path: audio file.
      sampling_rate: rate of the result; files at other rates are resampled.

    Returns:
      float32 ``(S,)``. Multi-channel files are averaged over channels (AST models are mono).

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: the file cannot be decoded, or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)  # (S, C)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(f"cannot decode {path} as audio: {error}") from error
    if data.size == 0:
        raise ValueError(f"{path} holds no audio samples")
    mono = data.mean(axis=1, dtype=np.float32)  # (S,)
    if rate != sampling_rate:
        mono = soxr.resample(mono, rate, sampling_rate, quality="VHQ").astype(np.float32)
    return mono
