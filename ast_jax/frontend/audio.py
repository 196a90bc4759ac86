"""Reading audio files into the float mono waveforms the feature extractor expects.

Any format libsndfile reads (wav, flac, ogg; mp3 with libsndfile >= 1.1). Integer PCM is scaled to
[-1, 1] by the decoder, multi-channel audio is averaged to mono, and audio at another rate is
resampled with soxr's high-quality (VHQ) resampler.

`load_audio` reads a whole file; `stream_audio` yields it block by block (memory bounded by the
block size, for hour-long recordings), resampling with soxr's streaming resampler.

Shape legend: S samples, C channels.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile
import soxr
from numpy.typing import NDArray

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioInfo",
    "audio_info",
    "find_audio",
    "load_audio",
    "stream_audio",
]

# File name extensions `find_audio` collects from directories: libsndfile's common containers.
AUDIO_EXTENSIONS = frozenset(
    {".aif", ".aiff", ".au", ".caf", ".flac", ".mp3", ".oga", ".ogg", ".opus", ".w64", ".wav"}
)
# Seconds of audio `stream_audio` decodes at a time.
_BLOCK_SECONDS = 10.0
_DECODE_ERRORS = (soundfile.LibsndfileError, RuntimeError, TypeError)


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file's header says.

    Attributes:
      path: the file.
      sampling_rate: native rate in Hz.
      channels: C.
      num_samples: samples per channel at the native rate (S).
    """

    path: Path
    sampling_rate: int
    channels: int
    num_samples: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_samples / self.sampling_rate


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read and check a file's header.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: the file cannot be decoded, or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        info = soundfile.info(path)
    except _DECODE_ERRORS as error:
        raise ValueError(f"cannot decode {path} as audio: {error}") from error
    if info.frames <= 0:
        raise ValueError(f"{path} holds no audio samples")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


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
    info = audio_info(path)
    try:
        data, rate = soundfile.read(info.path, dtype="float32", always_2d=True)  # (S, C)
    except _DECODE_ERRORS as error:
        raise ValueError(f"cannot decode {info.path} as audio: {error}") from error
    mono = data.mean(axis=1, dtype=np.float32)  # (S,)
    if rate != sampling_rate:
        mono = soxr.resample(mono, rate, sampling_rate, quality="VHQ").astype(np.float32)
    return mono


def stream_audio(
    path: str | os.PathLike, sampling_rate: int = 16000, *, block_seconds: float = _BLOCK_SECONDS
) -> Iterator[NDArray[np.float32]]:
    """Yield a file as consecutive mono float32 blocks ``(S_i,)`` at ``sampling_rate`` Hz.

    Decoding, downmixing and scaling are those of `load_audio`, and the blocks concatenate to its
    result (soxr's streaming resampler runs the same filter as its one-shot call). Only one block
    is held at a time. The header is checked before the first block, so a missing, unreadable or
    empty file raises on the first ``next()``.

    Args:
      path: audio file.
      sampling_rate: rate of the blocks.
      block_seconds: seconds of audio decoded per block (at the native rate).

    Yields:
      float32 ``(S_i,)`` blocks; some may be empty while the resampler fills its filter.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: the file cannot be decoded (also part-way through), or holds no samples.
    """
    info = audio_info(path)
    block_size = max(1, int(block_seconds * info.sampling_rate))
    resampler = None
    if info.sampling_rate != sampling_rate:
        resampler = soxr.ResampleStream(
            info.sampling_rate, sampling_rate, 1, dtype="float32", quality="VHQ"
        )
    try:
        with soundfile.SoundFile(info.path) as file:
            for block in file.blocks(block_size, dtype="float32", always_2d=True):  # (S_i, C)
                mono = block.mean(axis=1, dtype=np.float32)  # (S_i,)
                yield mono if resampler is None else resampler.resample_chunk(mono)
    except _DECODE_ERRORS as error:
        raise ValueError(f"cannot decode {info.path} as audio: {error}") from error
    if resampler is not None:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def find_audio(path: str | os.PathLike) -> list[Path]:
    """``path`` itself if it is not a directory, else the audio files under it, sorted.

    Raises:
      FileNotFoundError: a directory holding no file with an extension in `AUDIO_EXTENSIONS`.
    """
    path = Path(path)
    if not path.is_dir():
        return [path]
    found = sorted(
        child
        for child in path.rglob("*")
        if child.suffix.lower() in AUDIO_EXTENSIONS and child.is_file()
    )
    if not found:
        raise FileNotFoundError(
            f"no audio files in directory {path} (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})"
        )
    return found
