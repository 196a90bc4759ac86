"""Sliding windows over a streamed waveform, aligned to the feature extractor's frames.

A window is ``window_frames`` fbank frames (at most the model's ``max_length``); consecutive
windows start ``hop_frames`` frames apart. Kaldi frames with ``snip_edges`` depend only on their own
samples, so the features of a window cut from the waveform equal the matching rows of the whole
file's features: windows are cut in the sample domain and each is featurised on its own, which
keeps memory bounded by one window plus one decoded block.

Shape legend: S samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np
from numpy.typing import NDArray

from ast_jax.frontend.kaldi import FbankOptions, num_frames, samples_for_frames

__all__ = ["Windowing", "sliding_windows"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Windowing:
    """Window and hop of a sliding analysis, in frames of ``options``.

    Attributes:
      window_frames: frames per window.
      hop_frames: frames between window starts, 1 <= hop_frames <= window_frames (no gaps).
      options: the fbank options that define frame length and shift.
    """

    window_frames: int
    hop_frames: int
    options: FbankOptions

    def __post_init__(self) -> None:
        if self.window_frames < 1:
            raise ValueError(f"window must be at least one frame, got {self.window_frames}")
        if not 1 <= self.hop_frames <= self.window_frames:
            raise ValueError(
                f"hop must be between 1 frame and the window ({self.window_frames} frames), "
                f"got {self.hop_frames} frames"
            )

    @classmethod
    def from_seconds(
        cls,
        window: float | None,
        hop: float | None,
        *,
        max_frames: int,
        options: FbankOptions,
    ) -> Windowing:
        """Windowing from durations in seconds, rounded to whole frames.

        Args:
          window: window length; None for ``max_frames`` frames.
          hop: distance between window starts; None for the window length (no overlap).
          max_frames: the longest window the model takes (its ``max_length``).
          options: fbank options (frame shift).

        Raises:
          ValueError: a window longer than ``max_frames`` frames, or a hop outside (0, window].
        """
        seconds_per_frame = options.frame_shift / 1000
        window_frames = max_frames if window is None else round(window / seconds_per_frame)
        if window_frames > max_frames:
            raise ValueError(
                f"window of {window:g} s is longer than the model's input of "
                f"{max_frames * seconds_per_frame:g} s ({max_frames} frames)"
            )
        if window_frames < 1:
            raise ValueError(
                f"window of {window:g} s is shorter than one {seconds_per_frame:g} s frame"
            )
        hop_frames = window_frames if hop is None else round(hop / seconds_per_frame)
        if not 1 <= hop_frames <= window_frames:
            raise ValueError(
                f"hop of {hop:g} s must be between one frame ({seconds_per_frame:g} s) and the "
                f"window ({window_frames * seconds_per_frame:g} s)"
            )
        return cls(window_frames=window_frames, hop_frames=hop_frames, options=options)

    @property
    def window_samples(self) -> int:
        """Samples a full window spans: ``(window_frames - 1) * shift + frame length``."""
        return samples_for_frames(self.window_frames, self.options)

    @property
    def hop_samples(self) -> int:
        """Samples between window starts."""
        return self.hop_frames * self.options.window_shift

    def span(self, start: int, num_samples: int, *, last: bool) -> tuple[float, float]:
        """Seconds a window of ``num_samples`` samples from sample ``start`` stands for.

        One frame shift per frame, so that windows tile the audio as their hops do (a 1-s
        model's windows are 0-1 s, 1-2 s, ..., though each last 25-ms frame reads 15 ms
        further); the ``last`` window of an input runs to the end of the samples it reads, the
        end of the audio.
        """
        rate = self.options.sample_frequency
        end = start + (num_samples if last else self.window_frames * self.options.window_shift)
        return start / rate, end / rate

    def count(self, num_samples: int) -> int:
        """Number of windows `sliding_windows` yields for ``num_samples`` samples."""
        frames = num_frames(num_samples, self.options)
        if frames <= self.window_frames:
            return 1
        return 1 + -(-(frames - self.window_frames) // self.hop_frames)


def sliding_windows(
    blocks: Iterable[NDArray[np.float32]], windowing: Windowing
) -> Iterator[tuple[int, NDArray[np.float32]]]:
    """Cut a stream of waveform blocks into windows.

    Full windows are yielded as soon as the stream covers them. After the stream ends, one last
    shorter window holds the tail if frames remain that no window covered; a signal shorter than one
    window gives that one shorter window (which the extractor pads), so every frame is in a window.

    Args:
      blocks: consecutive ``(S_i,)`` pieces of one waveform.
      windowing: window and hop.

    Yields:
      ``(start, segment)``: the first sample's index and the window's samples ``(S_w,)``, with
      ``S_w == windowing.window_samples`` except for the tail window.
    """
    size, hop = windowing.window_samples, windowing.hop_samples
    buffer = np.zeros(0, np.float32)  # samples from `offset` on
    offset = start = 0
    covered = 0  # frames covered by the windows yielded so far
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while start + size <= offset + buffer.size:
            yield start, buffer[start - offset : start - offset + size]
            covered = start // windowing.options.window_shift + windowing.window_frames
            start += hop
        # Samples before the next window are no longer needed (hop <= window, so start <= end).
        buffer, offset = buffer[start - offset :], start
    total = offset + buffer.size
    if covered == 0 or covered < num_frames(total, windowing.options):
        yield start, buffer[start - offset :]
