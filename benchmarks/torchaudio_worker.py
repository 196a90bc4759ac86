"""Times torchaudio's Kaldi fbank for `bench_features.py`, inside the torchaudio environment
(`setup_torchaudio.py`), so torchaudio never enters the project's own environment.

    build/torchaudio-venv/bin/python benchmarks/torchaudio_worker.py CLIPS.npy

Loads the ``(B, S)`` float32 clips, warms up, picks torch's thread count, prints torchaudio's
version and that count, then for every line read from standard input runs the original recipe's
path on all clips (`common.torchaudio_features`) and prints its wall seconds.

Threads: whichever of one and one per core ran the clips faster in warm-up. On a loaded 2-core
machine torch's two OpenMP threads spin against the busy core and ran 10-20x slower than one
thread (86-167 vs 7 ms per clip), so the default would flatter ast-jax.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
import torchaudio
import torchaudio.compliance.kaldi as kaldi
from common import torchaudio_features


def _seconds(clips: np.ndarray) -> float:
    """Wall seconds of the recipe's path over ``clips``."""
    start = time.perf_counter()
    torchaudio_features(clips, kaldi)
    return time.perf_counter() - start


def _fastest_threads(clips: np.ndarray) -> int:
    """Of one thread and one per core, the count that runs ``clips`` faster (it stays set)."""
    seconds = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        torchaudio_features(clips[:1], kaldi)  # the first call pays torch's one-off set-up
        seconds[threads] = _seconds(clips)
    best = min(seconds, key=seconds.get)
    torch.set_num_threads(best)
    return best


def main() -> None:
    clips = np.load(sys.argv[1])
    print(torchaudio.__version__, _fastest_threads(clips), flush=True)
    for _ in sys.stdin:
        print(_seconds(clips), flush=True)


if __name__ == "__main__":
    main()
