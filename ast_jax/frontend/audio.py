"""Reading audio files into the float mono waveforms the feature extractor expects.

Any format libsndfile reads (wav, flac, ogg; mp3 with libsndfile >= 1.1). Integer PCM is scaled to
[-1, 1] by the decoder, multi-channel audio is averaged to mono, and audio at another rate is
resampled with soxr's high-quality (VHQ) resampler.

`load_audio` reads a whole file; `stream_audio` yields it block by block (memory bounded by the
block size, for hour-long recordings), resampling with soxr's streaming resampler.

Both refuse audio that would give a wrong answer without an error: samples that are NaN or
infinite, float audio far outside [-1, 1] (integer PCM stored as float: `check_samples`), and a
WAV file shorter than its header says (a truncated download or copy; libsndfile would quietly
return the samples that are there).

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
    "MAX_PEAK",
    "AudioInfo",
    "audio_info",
    "check_peak",
    "check_samples",
    "find_audio",
    "has_audio",
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
# Float audio is expected in [-1, 1]. A peak above this is integer PCM stored as float (or a wrong
# gain): the model would score it as very loud audio. 1.5 leaves room for mild clipping overshoot.
MAX_PEAK = 1.5


def check_samples(samples: NDArray[np.floating], name: str) -> None:
    """Refuses samples that are NaN or infinite, or float audio with a peak above `MAX_PEAK`.

    Raises:
      ValueError: naming ``name``, the problem and what to do.
    """
    finite = np.isfinite(samples)
    if not finite.all():
        first = int(np.flatnonzero(~finite.reshape(-1))[0])
        raise ValueError(
            f"{name}: {samples.size - int(finite.sum())} sample(s) are NaN or infinite (the "
            f"first at index {first}); the audio is corrupt"
        )
    check_peak(samples, name)


def check_peak(samples: NDArray[np.floating], name: str) -> None:
    """Refuses finite float audio with a peak above `MAX_PEAK` (`check_samples` without the
    finiteness test, for callers that made it already).

    Raises:
      ValueError: naming ``name``, the peak and the scaling to apply.
    """
    peak = float(np.max(np.abs(samples), initial=0.0))
    if peak > MAX_PEAK:
        raise ValueError(
            f"{name}: peak {peak:.6g} is far outside [-1, 1]; float audio must be scaled to "
            "[-1, 1] (integer PCM stored as float? divide by 32768 for 16-bit)"
        )


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
      ValueError: the file cannot be decoded, holds no samples, or is a WAV file shorter than
        its header says.
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
    declared = _wav_declared_frames(path) if info.format == "WAV" else None
    if declared is not None and declared > info.frames:
        raise ValueError(
            f"{path} is truncated: its header promises {declared} samples per channel, the file "
            f"holds {info.frames}"
        )
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


# A data chunk size that streaming writers put in the header when the length is not known yet.
_UNKNOWN_SIZES = frozenset({0, 0xFFFFFFFF})


def _wav_declared_frames(path: Path) -> int | None:
    """Samples per channel that a RIFF/WAVE header's ``data`` chunk declares; None when it
    declares no length (a stream) or the chunks cannot be walked."""
    block_align = None
    with open(path, "rb") as file:
        if file.read(12)[8:12] != b"WAVE":
            return None
        while header := file.read(8):
            if len(header) < 8:
                return None
            chunk, size = header[:4], int.from_bytes(header[4:], "little")
            if chunk == b"fmt ":
                block_align = int.from_bytes(file.read(16)[12:14], "little")
                file.seek(size - 16 + size % 2, os.SEEK_CUR)
            elif chunk == b"data":
                if size in _UNKNOWN_SIZES or not block_align:
                    return None
                return size // block_align
            else:
                file.seek(size + size % 2, os.SEEK_CUR)
    return None


def load_audio(path: str | os.PathLike, sampling_rate: int = 16000) -> NDArray[np.float32]:
    """Read an audio file as a mono float32 waveform ``(S,)`` in [-1, 1] at ``sampling_rate`` Hz.

    Args:
      path: audio file.
      sampling_rate: rate of the result; files at other rates are resampled.

    Returns:
      float32 ``(S,)``. Multi-channel files are averaged over channels (AST models are mono).

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: the file cannot be decoded, is truncated, holds no samples, or holds samples
        that `check_samples` refuses.
    """
    info = audio_info(path)
    try:
        data, rate = soundfile.read(info.path, dtype="float32", always_2d=True)  # (S, C)
    except _DECODE_ERRORS as error:
        raise ValueError(f"cannot decode {info.path} as audio: {error}") from error
    check_samples(data, str(info.path))
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
      ValueError: the file cannot be decoded (also part-way through), is truncated, holds no
        samples, or holds samples that `check_samples` refuses (raised at that block).
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
                check_samples(block, str(info.path))
                mono = block.mean(axis=1, dtype=np.float32)  # (S_i,)
                yield mono if resampler is None else resampler.resample_chunk(mono)
    except _DECODE_ERRORS as error:
        raise ValueError(f"cannot decode {info.path} as audio: {error}") from error
    if resampler is not None:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def _walk_audio(directory: Path) -> Iterator[Path]:
    """The audio files under ``directory``, in no particular order, following symbolic links to
    folders (a dataset assembled from links) but never entering one folder twice (no loops)."""
    seen: set[tuple[int, int]] = set()
    for root, folders, files in os.walk(directory, followlinks=True):
        stat = os.stat(root)
        if (stat.st_dev, stat.st_ino) in seen:
            folders.clear()
            continue
        seen.add((stat.st_dev, stat.st_ino))
        for name in files:
            child = Path(root, name)
            if child.suffix.lower() in AUDIO_EXTENSIONS and child.is_file():
                yield child


def has_audio(directory: str | os.PathLike) -> bool:
    """Whether `find_audio` finds anything under ``directory`` (stops at the first file)."""
    return next(_walk_audio(Path(directory)), None) is not None


def find_audio(path: str | os.PathLike) -> list[Path]:
    """``path`` itself if it is not a directory, else the audio files under it, sorted
    (symbolic links to folders are followed, as `os.walk` with ``followlinks``, without loops).

    Raises:
      FileNotFoundError: a directory holding no file with an extension in `AUDIO_EXTENSIONS`.
    """
    path = Path(path)
    if not path.is_dir():
        return [path]
    found = sorted(_walk_audio(path))
    if not found:
        raise FileNotFoundError(
            f"no audio files in directory {path} (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})"
        )
    return found
