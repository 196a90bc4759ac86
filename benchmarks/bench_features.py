"""Feature extraction speed: ast-jax's NumPy and JAX extractors vs transformers' extractor.

All run in this process on the same 10-s clips (AudioSet settings: 1024 frames, 128 mel bins).
Without torchaudio installed, transformers uses its NumPy path, the one this compares against.
The JAX extractor (`ast_jax.extract_features`, jitted) is timed after compilation,
including the host-to-device copy; its compile time is reported apart. When installed, also:
torchaudio's Kaldi fbank per clip plus the AST padding and normalisation (the original recipe's
path), and kaldi-native-fbank, which refuses 128 mel bins on 25-ms frames (an empty filter), so
it and ast-jax's `fbank` are timed side by side at 80 bins, with their largest log difference.

    .venv/bin/python benchmarks/bench_features.py [--batch-sizes 1 32] [--repeats 7]

Prints a table and appends one JSON line per configuration to `--output`
(benchmarks/results/features.jsonl).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
import warnings
from pathlib import Path

import jax
import numpy as np
from common import (
    KALDI_OPTIONS,
    RESULTS_DIR,
    SAMPLING_RATE,
    append_jsonl,
    environment,
    median_seconds,
    torchaudio_features,
)

import ast_jax
from ast_jax.frontend.jax_fbank import extract_features

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


def _optional_columns(clips: np.ndarray, repeats: int) -> dict:
    """torchaudio and kaldi-native-fbank, where installed (ms per clip)."""
    batch = len(clips)
    record = {}
    try:
        import torchaudio.compliance.kaldi as kaldi
    except ImportError:
        pass
    else:
        seconds = median_seconds(functools.partial(torchaudio_features, clips, kaldi), 1, repeats)
        record["torchaudio_ms_per_clip"] = 1e3 * seconds / batch
    try:
        import kaldi_native_fbank as knf
    except ImportError:
        return record
    ours_80 = functools.partial(ast_jax.fbank, **(KALDI_OPTIONS | {"num_mel_bins": KNF_MEL_BINS}))
    record["knf_80_bins_ms_per_clip"] = (
        1e3 * median_seconds(lambda: [_knf_fbank(clip, knf) for clip in clips], 1, repeats) / batch
    )
    record["ast_jax_fbank_80_bins_ms_per_clip"] = (
        1e3 * median_seconds(lambda: [ours_80(clip) for clip in clips], 1, repeats) / batch
    )
    record["knf_80_bins_log_max_abs_diff"] = float(
        max(np.abs(_knf_fbank(clip, knf) - ours_80(clip)).max() for clip in clips)
    )
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    import transformers

    ours = ast_jax.FeatureExtractor()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HF warns about the all-zero mel filter (index 3)
        theirs = transformers.ASTFeatureExtractor()
    env = environment()
    jax_extract = jax.jit(extract_features, static_argnums=1)
    print(
        f"{'batch':>5} {'numpy ms/clip':>14} {'jax ms/clip':>12} {'transformers ms/clip':>21} "
        f"{'numpy speed-up':>15} {'jax compile s':>14}"
    )
    for batch_size in args.batch_sizes:
        clips = _clips(batch_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours_s = median_seconds(
                functools.partial(ours, clips, sampling_rate=SAMPLING_RATE), 1, args.repeats
            )
            start = time.perf_counter()
            jax_extract.lower(clips, ours).compile()
            compile_s = time.perf_counter() - start
            jax_s = median_seconds(
                lambda clips=clips: jax_extract(clips, ours).block_until_ready(), 1, args.repeats
            )
            theirs_s = median_seconds(
                functools.partial(
                    theirs, list(clips), sampling_rate=SAMPLING_RATE, return_tensors="np"
                ),
                1,
                max(3, args.repeats // 2),
            )
        record = {
            "benchmark": "features",
            "batch_size": batch_size,
            "clip_seconds": CLIP_SECONDS,
            "ast_jax_ms_per_clip": 1e3 * ours_s / batch_size,
            "ast_jax_jax_ms_per_clip": 1e3 * jax_s / batch_size,
            "ast_jax_jax_compile_s": compile_s,
            "transformers_ms_per_clip": 1e3 * theirs_s / batch_size,
            "ast_jax_clips_per_s": batch_size / ours_s,
            "speedup": theirs_s / ours_s,
            "jax_speedup": theirs_s / jax_s,
            **_optional_columns(clips, max(3, args.repeats // 2)),
            **env,
        }
        append_jsonl(args.output, [record])
        print(
            f"{batch_size:>5} {record['ast_jax_ms_per_clip']:>14.2f} "
            f"{record['ast_jax_jax_ms_per_clip']:>12.2f} "
            f"{record['transformers_ms_per_clip']:>21.2f} {record['speedup']:>14.1f}x "
            f"{compile_s:>14.2f}"
        )
        extra = {
            k: round(v, 4)
            for k, v in record.items()
            if k.startswith(("torchaudio", "knf", "ast_jax_fbank"))
        }
        if extra:
            print(f"      {json.dumps(extra)}")


if __name__ == "__main__":
    main()
