"""Helpers shared by the benchmark scripts: timing, FLOP counts, environment, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ast_jax.config import ASTConfig

RESULTS_DIR = Path(__file__).parent / "results"
SAMPLING_RATE = 16000
# The AST recipe's Kaldi options (docs/numerics.md, Options AST uses), in torchaudio's and
# ast-jax's keyword names.
KALDI_OPTIONS = {
    "htk_compat": True,
    "sample_frequency": SAMPLING_RATE,
    "use_energy": False,
    "window_type": "hanning",
    "num_mel_bins": 128,
    "dither": 0.0,
    "frame_shift": 10,
}


# The full-size AudioSet model (10/10 patch strides, 1024 frames x 128 bins, 527 classes).
AUDIOSET_CONFIG = ASTConfig(labels=tuple(f"LABEL_{i}" for i in range(527)))


def median_seconds(call: Callable[[], object], warmup: int = 1, repeats: int = 5) -> float:
    """Median wall seconds of `repeats` calls after `warmup` untimed ones. `call` must block until
    its work is done (`block_until_ready`, `torch.cuda.synchronize`)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(
    calls: dict[str, Callable[[], object]], warmup: int, repeats: int, settle: int = 0
) -> dict[str, float]:
    """Median seconds per backend, timing one call of each backend per round, so that a change
    in the machine's load during the run shifts every backend alike. A call that returns a float
    reports its own seconds (a subprocess that times itself), taken instead of the wall time
    around it. ``settle`` untimed calls precede each timed call, for backends whose first call
    after another backend's pays for the switch (`bench_train.py`)."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            for _ in range(settle):
                call()
            start = time.perf_counter()
            result = call()
            elapsed = time.perf_counter() - start
            times[name].append(result if isinstance(result, float) else elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def forward_flops(config: ASTConfig) -> int:
    """Multiply-add FLOPs (2 per MAC) of one clip's forward pass: patch projection, per layer the
    qkv / output / MLP projections and the two attention products, and the classifier. LayerNorm,
    softmax and activations are left out (a few tenths of a percent)."""
    n, d, i = config.seq_len, config.hidden_size, config.intermediate_size
    patches = config.num_patches * 2 * config.patch_size**2 * d
    per_layer = 2 * n * d * (3 * d + d + 2 * i) + 2 * 2 * n * n * d
    return patches + config.num_hidden_layers * per_layer + 2 * d * config.num_labels


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """The checkout's short commit hash, with "-dirty" when tracked files differ from it, or
    "unknown" outside git."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except OSError:
        return "unknown"
    return (commit + ("-dirty" if dirty else "")) if commit else "unknown"


def environment(**extra: Any) -> dict[str, Any]:
    """Machine and library versions of this run (imports what it reports on lazily)."""
    import flax
    import jax
    import numpy as np

    device = jax.devices()[0]
    versions = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "numpy": np.__version__,
    }
    for name in ("torch", "transformers", "torchaudio"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return {
        "commit": git_commit(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "jax_device": f"{device.platform}:{device.device_kind}",
        "versions": versions,
        **extra,
    }


def torchaudio_features(clips: Any, kaldi: Any) -> None:
    """The original AST dataloader's path, for timing: torchaudio's ``kaldi.fbank`` per clip,
    pad or cut to 1024 frames, normalise with the AudioSet statistics."""
    import torch

    for clip in clips:
        values = kaldi.fbank(torch.from_numpy(clip)[None], **KALDI_OPTIONS)
        values = torch.nn.functional.pad(values, (0, 0, 0, max(0, 1024 - len(values))))[:1024]
        _ = (values - (-4.2677393)) / (4.5689974 * 2)


def append_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.writelines(json.dumps(row) + "\n" for row in rows)
