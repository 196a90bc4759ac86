"""Feature extraction speed: ast-jax's NumPy and JAX extractors vs transformers and torchaudio.

All run on the same 10-s clips (AudioSet settings: 1024 frames, 128 mel bins), timed in
interleaved rounds (one call of each per round, medians), so a change in the machine's load hits
all alike; the 1-min load average is recorded. Without torchaudio in this environment,
transformers uses its NumPy path, the one this compares against. The NumPy extractor computes
frames and FFT in float64 (the default, which the transformers parity tests pin); `fbank_stacked`
with ``dtype=np.float32`` (torchaudio's precision, log-mel only) is timed beside it, with its
largest difference from the float64 log-mel. The JAX extractor (`ast_jax.extract_features`,
jitted) is timed after compilation, including the host-to-device copy; its compile time is
reported apart.

torchaudio's Kaldi fbank per clip plus the AST padding and normalisation (the original recipe's
path) runs in its own environment (`setup_torchaudio.py`, `--torchaudio-python`) as a
subprocess that times itself on the same clips (`torchaudio_worker.py`), in the same rounds.
kaldi-native-fbank, where installed, refuses 128 mel bins on 25-ms frames (an empty filter), so
it and ast-jax's `fbank` are timed side by side at 80 bins, with their largest log difference.

    .venv/bin/python benchmarks/setup_torchaudio.py      # once, for the torchaudio column
    .venv/bin/python benchmarks/bench_features.py [--batch-sizes 1 32] [--repeats 7]

Prints a table and appends one JSON line per configuration to `--output`
(benchmarks/results/features.jsonl).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
from common import (
    KALDI_OPTIONS,
    RESULTS_DIR,
    SAMPLING_RATE,
    append_jsonl,
    environment,
    interleaved_medians,
    median_seconds,
)
from setup_torchaudio import DEFAULT_VENV, venv_python

import ast_jax
from ast_jax.frontend.jax_fbank import extract_features
from ast_jax.frontend.kaldi import fbank_stacked

RESULTS = RESULTS_DIR / "features.jsonl"
CLIP_SECONDS = 10.0
KNF_MEL_BINS = 80  # kaldi-native-fbank rejects 128 bins on 25-ms frames


def _clips(batch_size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    samples = int(CLIP_SECONDS * SAMPLING_RATE)
    t = np.arange(samples) / SAMPLING_RATE
    speechlike = np.sin(2 * np.pi * 220 * t * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t)))
    noise = rng.standard_normal((batch_size, samples))
    return (0.3 * speechlike + 0.05 * noise).astype(np.float32)  # (B, S)


def _knf_fbank(clip: np.ndarray, knf) -> np.ndarray:
    options = knf.FbankOptions()
    options.frame_opts.dither = 0.0
    options.frame_opts.window_type = "hanning"
    options.mel_opts.num_bins = KNF_MEL_BINS
    options.htk_compat = True
    options.use_energy = False
    extractor = knf.OnlineFbank(options)
    extractor.accept_waveform(SAMPLING_RATE, clip)
    extractor.input_finished()
    return np.stack([extractor.get_frame(i) for i in range(extractor.num_frames_ready)])


def _knf_columns(clips: np.ndarray, repeats: int) -> dict:
    """kaldi-native-fbank vs ast-jax's `fbank` at 80 bins, where installed (ms per clip)."""
    try:
        import kaldi_native_fbank as knf
    except ImportError:
        return {}
    batch = len(clips)
    ours_80 = functools.partial(ast_jax.fbank, **(KALDI_OPTIONS | {"num_mel_bins": KNF_MEL_BINS}))
    return {
        "knf_80_bins_ms_per_clip": 1e3
        * median_seconds(lambda: [_knf_fbank(clip, knf) for clip in clips], 1, repeats)
        / batch,
        "ast_jax_fbank_80_bins_ms_per_clip": 1e3
        * median_seconds(lambda: [ours_80(clip) for clip in clips], 1, repeats)
        / batch,
        "knf_80_bins_log_max_abs_diff": float(
            max(np.abs(_knf_fbank(clip, knf) - ours_80(clip)).max() for clip in clips)
        ),
    }


@contextlib.contextmanager
def _torchaudio(python: Path, clips: np.ndarray) -> Iterator[tuple[Callable[[], float], dict]]:
    """A running `torchaudio_worker.py` on ``clips``: a call that times one pass of it over all
    clips (its own seconds), and torchaudio's version and torch's thread count there."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clips.npy"
        np.save(path, clips)
        worker = subprocess.Popen(
            [python, Path(__file__).parent / "torchaudio_worker.py", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        with worker:
            first_line = worker.stdout.readline().split()  # torchaudio's version, threads
            if len(first_line) != 2:
                raise RuntimeError(f"{python} could not start torchaudio_worker.py (see above)")
            facts = {"torchaudio_version": first_line[0], "torchaudio_threads": int(first_line[1])}

            def call() -> float:
                worker.stdin.write("\n")
                worker.stdin.flush()
                return float(worker.stdout.readline())

            yield call, facts
            worker.stdin.close()


def _calls(
    clips: np.ndarray,
    ours: ast_jax.FeatureExtractor,
    theirs: Any,
    jax_extract: Callable[..., jax.Array],
    torchaudio: Callable[[], float] | None,
) -> dict[str, Callable[[], object]]:
    """One blocking call per backend, all on ``clips``."""
    cut = clips[:, : ours.samples_needed]  # what the extractor reads of each clip
    calls = {
        "ast_jax": functools.partial(ours, clips, sampling_rate=SAMPLING_RATE),
        "ast_jax_fbank_float32": functools.partial(
            fbank_stacked, cut, ours.fbank_options, dtype=np.float32
        ),
        "ast_jax_jax": lambda: jax_extract(clips, ours).block_until_ready(),
        "transformers": functools.partial(
            theirs, list(clips), sampling_rate=SAMPLING_RATE, return_tensors="np"
        ),
    }
    if torchaudio is not None:
        calls["torchaudio"] = torchaudio
    return calls


def _float32_difference(clips: np.ndarray, ours: ast_jax.FeatureExtractor) -> float:
    """Largest log-mel difference of the float32 frames and FFT from the default float64."""
    cut = clips[:, : ours.samples_needed]
    float32, _ = fbank_stacked(cut, ours.fbank_options, dtype=np.float32)
    float64, _ = fbank_stacked(cut, ours.fbank_options)
    return float(np.abs(float32 - float64).max())


def _record(batch_size: int, seconds: dict[str, float], compile_s: float) -> dict:
    """The JSON record of one batch size: ms per clip, speed-ups, compile time."""
    ms = {name: 1e3 * value / batch_size for name, value in seconds.items()}
    record = {
        "benchmark": "features",
        "batch_size": batch_size,
        "clip_seconds": CLIP_SECONDS,
        "ast_jax_ms_per_clip": ms["ast_jax"],
        "ast_jax_fbank_float32_ms_per_clip": ms["ast_jax_fbank_float32"],
        "ast_jax_jax_ms_per_clip": ms["ast_jax_jax"],
        "ast_jax_jax_compile_s": compile_s,
        "transformers_ms_per_clip": ms["transformers"],
        "ast_jax_clips_per_s": 1e3 / ms["ast_jax"],
        "speedup": ms["transformers"] / ms["ast_jax"],
        "float32_speedup": ms["transformers"] / ms["ast_jax_fbank_float32"],
        "jax_speedup": ms["transformers"] / ms["ast_jax_jax"],
    }
    if "torchaudio" in ms:
        record |= {
            "torchaudio_ms_per_clip": ms["torchaudio"],
            "torchaudio_speedup": ms["torchaudio"] / ms["ast_jax"],
            "torchaudio_float32_speedup": ms["torchaudio"] / ms["ast_jax_fbank_float32"],
            "torchaudio_jax_speedup": ms["torchaudio"] / ms["ast_jax_jax"],
        }
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--torchaudio-python",
        type=Path,
        default=venv_python(DEFAULT_VENV),
        help="interpreter of the torchaudio environment (setup_torchaudio.py); skipped if absent",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    import transformers

    ours = ast_jax.FeatureExtractor()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HF warns about the all-zero mel filter (index 3)
        theirs = transformers.ASTFeatureExtractor()
    env = environment()
    jax_extract = jax.jit(extract_features, static_argnums=1)
    if not args.torchaudio_python.is_file():
        print(f"no {args.torchaudio_python}: run setup_torchaudio.py for the torchaudio column")
    print(
        f"{'batch':>5} {'numpy ms/clip':>14} {'float32 ms/clip':>16} {'jax ms/clip':>12} "
        f"{'transformers ms/clip':>21} {'torchaudio ms/clip':>19} {'jax compile s':>14}"
    )
    for batch_size in args.batch_sizes:
        clips = _clips(batch_size)
        start = time.perf_counter()
        jax_extract.lower(clips, ours).compile()
        compile_s = time.perf_counter() - start
        with contextlib.ExitStack() as stack, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torchaudio, torchaudio_facts = None, {}
            if args.torchaudio_python.is_file():
                torchaudio, torchaudio_facts = stack.enter_context(
                    _torchaudio(args.torchaudio_python, clips)
                )
            calls = _calls(clips, ours, theirs, jax_extract, torchaudio)
            seconds = interleaved_medians(calls, 1, args.repeats)
        record = {
            **_record(batch_size, seconds, compile_s),
            "float32_log_max_abs_diff_vs_float64": _float32_difference(clips, ours),
            "load_average": os.getloadavg(),
            **torchaudio_facts,
            **_knf_columns(clips, max(3, args.repeats // 2)),
            **env,
        }
        append_jsonl(args.output, [record])
        print(
            f"{batch_size:>5} {record['ast_jax_ms_per_clip']:>14.3f} "
            f"{record['ast_jax_fbank_float32_ms_per_clip']:>16.3f} "
            f"{record['ast_jax_jax_ms_per_clip']:>12.3f} "
            f"{record['transformers_ms_per_clip']:>21.2f} "
            f"{record.get('torchaudio_ms_per_clip', float('nan')):>19.3f} {compile_s:>14.2f}"
        )
        extra = {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in record.items()
            if k.endswith(("speedup", "diff_vs_float64", "average")) or k.startswith("knf")
        }
        print(f"      {json.dumps(extra)}")


if __name__ == "__main__":
    main()
