#!/usr/bin/env python3
"""Accelerator benchmark: ast-jax vs transformers' PyTorch AST on one GPU, same weights, same run.

Sections (each recorded even if another fails):
  ceiling     the card's measured dense matrix rate (bf16 and fp32 8192^3 products through JAX).
  parity      full-size random model on the GPU: JAX float32 at "highest" matmul precision vs
              PyTorch float32 with TF32 off (max |logit diff|), and bf16 / fp16 against that
              float32 reference (relative L2 error, top-1 agreement), fresh random inputs.
  forward     throughput (clips/s) and achieved TFLOP/s per backend and batch: JAX bf16 / fp32 with
              XLA or cuDNN attention, PyTorch SDPA in fp16 / bf16 / fp32; JAX's compile time and
              XLA's memory estimate, PyTorch's peak allocated memory.
  end_to_end  waveforms -> logits: ast-jax's one fused XLA program (features on the GPU) vs
              transformers' extractor on the host + the PyTorch fp16 model.
  features    per-clip extraction: ast-jax NumPy (host), ast-jax JAX (GPU), torchaudio's Kaldi
              fbank per clip plus AST normalisation (host), transformers' extractor; and live parity
              of ast-jax's fbank with torchaudio's on fresh random signals.

    python benchmarks/bench_accelerator.py --output benchmarks/results/accelerator.json

`benchmarks/run_all.py` folds the JSON into RESULTS.md. `--smoke` runs every section at toy sizes
(a few seconds on a CPU) to check the script before spending device time.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# Let PyTorch share the card: JAX would otherwise take 75% of its memory at start.
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers
from common import (
    KALDI_OPTIONS,
    SAMPLING_RATE,
    environment,
    forward_flops,
    median_seconds,
    torchaudio_features,
)

from ast_jax import ASTConfig, ASTForAudioClassification, FeatureExtractor, fbank, params_from_hf
from ast_jax.frontend.extractor import default_extractor
from ast_jax.frontend.jax_fbank import extract_features
from ast_jax.model.waveforms import logits_from_waveforms

# (compute dtype, attention, matmul precision): JAX's default float32 dots on a GPU may use TF32,
# PyTorch's do not; the "highest" row is the like-for-like float32 comparison.
JAX_BACKENDS = (
    ("bfloat16", "cudnn", None),
    ("bfloat16", "xla", None),
    ("float32", "xla", None),
    ("float32", "xla", "highest"),
)
TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def _section(results: dict, name: str, run: Callable[[], Any], output: Path) -> None:
    """Runs one section, records its result or its error, and rewrites the output file."""
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    try:
        results[name] = run()
    except Exception as error:  # a failed section must not lose the others' numbers
        traceback.print_exc()
        results[name] = {"error": f"{type(error).__name__}: {error}"}
    results.setdefault("section_seconds", {})[name] = round(time.perf_counter() - start, 1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")


def _sync_torch() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _ceiling(size: int) -> dict:
    """Dense matrix rate of the card through JAX, random inputs (zeros can run faster)."""
    rates = {}
    keys = jax.random.split(jax.random.key(0), 2)
    for name, dtype, precision in (("bf16", jnp.bfloat16, None), ("fp32", jnp.float32, "highest")):
        a, b = (jax.random.normal(key, (size, size), dtype) for key in keys)
        product = jax.jit(lambda a, b, p=precision: jnp.matmul(a, b, precision=p))
        seconds = median_seconds(
            lambda f=product, a=a, b=b: f(a, b).block_until_ready(), warmup=2, repeats=10
        )
        rates[f"{name}_tflops"] = 2 * size**3 / seconds / 1e12
    return {"size": size, **rates}


def _torch_model(config: ASTConfig, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    hf_config = transformers.ASTConfig(
        **{k: v for k, v in config.to_hf_dict().items() if k not in ("id2label", "label2id")},
        num_labels=config.num_labels,
        attn_implementation="sdpa",
    )
    return transformers.ASTForAudioClassification(hf_config).eval().to(device)


def _cast(model: torch.nn.Module, dtype: str) -> torch.nn.Module:
    return copy.deepcopy(model).to(TORCH_DTYPES[dtype])


def _jax_forward(params, config: ASTConfig, dtype: str, attention: str):
    model = ASTForAudioClassification(replace(config, dtype=dtype, attention=attention))
    return jax.jit(lambda params, x: model.apply({"params": params}, x).logits)


def _torch_logits(model, x: np.ndarray, dtype: str, device: str) -> np.ndarray:
    inputs = torch.from_numpy(x).to(device, TORCH_DTYPES[dtype])
    with torch.inference_mode():
        return model(inputs).logits.float().cpu().numpy()


def _compare(test: np.ndarray, reference: np.ndarray) -> dict:
    return {
        "max_abs_diff": float(np.abs(test - reference).max()),
        "relative_l2": float(np.linalg.norm(test - reference) / np.linalg.norm(reference)),
        "top1_agreement": float(np.mean(test.argmax(-1) == reference.argmax(-1))),
        "logit_scale": float(np.abs(reference).max()),
    }


def _parity(config, params, torch_model, device: str, batch: int) -> dict:
    x = np.random.default_rng(1).normal(0, 0.5, (batch, config.max_length, config.num_mel_bins))
    x = x.astype(np.float32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    reference = _torch_logits(torch_model, x, "float32", device)
    with jax.default_matmul_precision("highest"):
        ours = np.asarray(_jax_forward(params, config, "float32", "xla")(params, x))
    result = {"batch": batch, "jax_float32_highest": _compare(ours, reference)}
    for dtype in ("bfloat16", "float16"):
        model = _cast(torch_model, dtype)
        result[f"torch_{dtype}"] = _compare(_torch_logits(model, x, dtype, device), reference)
        del model
    for attention in ("xla", "cudnn"):
        try:
            logits = np.asarray(_jax_forward(params, config, "bfloat16", attention)(params, x))
            result[f"jax_bfloat16_{attention}"] = _compare(logits.astype(np.float32), reference)
        except Exception as error:  # cuDNN attention needs an NVIDIA GPU
            result[f"jax_bfloat16_{attention}"] = {"error": f"{type(error).__name__}: {error}"}
    return result


def _forward(config, params, torch_model, device: str, batches, repeats: int) -> list[dict]:
    flops = forward_flops(config)
    rows = []
    for batch in batches:
        rng = np.random.default_rng(batch)
        inputs = [  # two buffers, alternated, so no run reads what the last left in cache
            rng.normal(0, 0.5, (batch, config.max_length, config.num_mel_bins)).astype(np.float32)
            for _ in range(2)
        ]
        for dtype, attention, precision in JAX_BACKENDS:
            name = f"jax-{dtype}-{attention}" + (f"-{precision}" if precision else "")
            row = {"backend": name, "batch": batch}
            try:
                forward = _jax_forward(params, config, dtype, attention)
                xs = [jax.device_put(x) for x in inputs]
                start = time.perf_counter()
                with (
                    jax.default_matmul_precision(precision)
                    if precision
                    else contextlib.nullcontext()
                ):
                    compiled = forward.lower(params, xs[0]).compile()
                row["compile_s"] = time.perf_counter() - start
                memory = compiled.memory_analysis()
                if memory is not None:
                    row["memory_gb"] = (
                        memory.temp_size_in_bytes + memory.argument_size_in_bytes
                    ) / 1e9
                turn = iter(range(10**9))
                row["seconds"] = median_seconds(
                    lambda f=compiled, xs=xs, turn=turn: f(
                        params, xs[next(turn) % 2]
                    ).block_until_ready(),
                    warmup=2,
                    repeats=repeats,
                )
            except Exception as error:
                row["error"] = f"{type(error).__name__}: {error}"
            rows.append(row)
            print(row, flush=True)
        for dtype in ("float16", "bfloat16", "float32"):
            row = {"backend": f"torch-{dtype}-sdpa", "batch": batch}
            try:
                model = torch_model if dtype == "float32" else _cast(torch_model, dtype)
                tensors = [torch.from_numpy(x).to(device, TORCH_DTYPES[dtype]) for x in inputs]
                turn = iter(range(10**9))
                torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default

                def call(model=model, tensors=tensors, turn=turn):
                    with torch.inference_mode():
                        model(tensors[next(turn) % 2])
                    _sync_torch()

                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                row["seconds"] = median_seconds(call, warmup=2, repeats=repeats)
                if device == "cuda":
                    row["memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
                del model, tensors
            except Exception as error:
                row["error"] = f"{type(error).__name__}: {error}"
            rows.append(row)
            print(row, flush=True)
    for row in rows:
        if "seconds" in row:
            row["clips_per_s"] = row["batch"] / row["seconds"]
            row["tflops"] = flops * row["batch"] / row["seconds"] / 1e12
    return rows


def _clips(batch: int, seconds: float, seed: int) -> np.ndarray:
    """Speech-like test signals: a vibrato tone plus noise, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    f0 = rng.uniform(100, 400, (batch, 1))
    tone = np.sin(2 * np.pi * f0 * t * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t)))
    return (0.3 * tone + 0.05 * rng.standard_normal(tone.shape)).astype(np.float32)


def _end_to_end(config, params, torch_model, device: str, batch: int, seconds: float) -> dict:
    extractor = default_extractor(config)
    waveforms = _clips(batch, seconds, seed=2)
    result: dict[str, Any] = {"batch": batch, "clip_seconds": seconds}
    config_bf16 = replace(config, dtype="bfloat16", attention="cudnn")
    fused = jax.jit(logits_from_waveforms, static_argnames=("config", "extractor"))
    try:
        fused(params, waveforms, config_bf16, extractor).block_until_ready()
    except Exception:  # no cuDNN attention here: the portable path
        config_bf16 = replace(config_bf16, attention="xla")
    result["jax_attention"] = config_bf16.attention

    def ours():  # the host -> device copy of the waveforms is part of the work
        fused(params, jax.device_put(waveforms), config_bf16, extractor).block_until_ready()

    result["ast_jax_fused_bf16_s"] = median_seconds(ours, warmup=1, repeats=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HF warns about an all-zero mel filter
        theirs_extractor = transformers.ASTFeatureExtractor(
            max_length=config.max_length, num_mel_bins=config.num_mel_bins
        )
    model16 = _cast(torch_model, "float16")

    def theirs():
        features = theirs_extractor(
            list(waveforms), sampling_rate=SAMPLING_RATE, return_tensors="pt"
        )
        with torch.inference_mode():
            model16(features["input_values"].to(device, torch.float16))
        _sync_torch()

    result["transformers_fp16_s"] = median_seconds(theirs, warmup=1, repeats=3)
    result["ast_jax_clips_per_s"] = batch / result["ast_jax_fused_bf16_s"]
    result["transformers_clips_per_s"] = batch / result["transformers_fp16_s"]
    result["speedup"] = result["transformers_fp16_s"] / result["ast_jax_fused_bf16_s"]
    return result


def _features(batch: int, seconds: float) -> dict:
    extractor = FeatureExtractor()
    clips = _clips(batch, seconds, seed=3)
    result: dict[str, Any] = {"batch": batch, "clip_seconds": seconds}
    ms = lambda s: 1e3 * s / batch
    result["ast_jax_numpy_ms"] = ms(
        median_seconds(lambda: extractor(clips, sampling_rate=SAMPLING_RATE), repeats=5)
    )
    jax_extract = jax.jit(extract_features, static_argnums=1)
    result["ast_jax_jax_ms"] = ms(
        median_seconds(
            lambda: jax_extract(jax.device_put(clips), extractor).block_until_ready(), repeats=5
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = transformers.ASTFeatureExtractor()
        result["transformers_ms"] = ms(
            median_seconds(
                lambda: theirs(list(clips), sampling_rate=SAMPLING_RATE, return_tensors="np"),
                repeats=3,
            )
        )
    try:
        import torchaudio
        import torchaudio.compliance.kaldi as kaldi
    except ImportError:
        return result
    result["torchaudio"] = torchaudio.__version__
    result["torchaudio_ms"] = ms(
        median_seconds(lambda: torchaudio_features(clips, kaldi), repeats=3)
    )
    result["torchaudio_parity"] = _torchaudio_parity(kaldi)
    return result


def _torchaudio_parity(kaldi) -> dict:
    """ast-jax fbank vs torchaudio's on fresh random signals (white noise, tones, chirps,
    1-10 s): log-mel max |diff| on bands within 70 dB of their frame's peak (the range float32
    FFT rounding leaves resolvable, as the fixture tests), and over every value."""
    rng = np.random.default_rng(int(time.time()))
    resolvable, everything = 0.0, 0.0
    for case in range(12):
        length = int(rng.uniform(1, 10) * SAMPLING_RATE)
        t = np.arange(length) / SAMPLING_RATE
        kind = case % 3
        if kind == 0:
            signal = rng.uniform(-1, 1, length)
        elif kind == 1:
            signal = np.sin(2 * np.pi * rng.uniform(50, 7000) * t) * rng.uniform(0.01, 1)
        else:
            signal = np.sin(2 * np.pi * (100 + 3000 * t / t[-1]) * t)
        signal = signal.astype(np.float32)
        ours = fbank(signal, **KALDI_OPTIONS)
        theirs = kaldi.fbank(torch.from_numpy(signal)[None], **KALDI_OPTIONS).numpy()
        diff = np.abs(ours - theirs)
        within = theirs >= theirs.max(axis=1, keepdims=True) - np.log(10.0) * 7  # 70 dB
        resolvable = max(resolvable, float(diff[within].max()))
        everything = max(everything, float(diff.max()))
    return {"cases": 12, "log_max_abs_diff_resolvable": resolvable, "log_max_abs_diff": everything}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="toy sizes, to test the script")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = ASTConfig(labels=tuple(f"LABEL_{i}" for i in range(527)))
    batches, repeats, ceiling_size, feature_batch, end_batch = (
        args.batch_sizes,
        args.repeats,
        8192,
        64,
        128,
    )
    if args.smoke:
        config = replace(config, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, max_length=128)  # fmt: skip
        batches, repeats, ceiling_size, feature_batch, end_batch = [2], 2, 256, 2, 2
    results: dict[str, Any] = {
        "benchmark": "accelerator",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "torch_device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "forward_gflop_per_clip": forward_flops(config) / 1e9,
        **environment(),
    }
    torch_model = _torch_model(config, device)
    state_dict = {k: v.float().cpu().numpy() for k, v in torch_model.state_dict().items()}
    params = jax.device_put(params_from_hf(state_dict, config))
    _section(results, "ceiling", lambda: _ceiling(ceiling_size), args.output)
    _section(
        results, "parity", lambda: _parity(config, params, torch_model, device, 8), args.output
    )
    _section(
        results,
        "forward",
        lambda: _forward(config, params, torch_model, device, batches, repeats),
        args.output,
    )
    _section(
        results,
        "end_to_end",
        lambda: _end_to_end(config, params, torch_model, device, end_batch, 10.0),
        args.output,
    )
    _section(results, "features", lambda: _features(feature_batch, 10.0), args.output)
    _print_summary(results)


def _print_summary(results: dict) -> None:
    print(f"\n{results['torch_device']} | {results['jax_device']} | {results['versions']}")
    print(f"ceiling: {results.get('ceiling')}")
    print(f"parity: {json.dumps(results.get('parity'))}")
    forward = results.get("forward")
    if isinstance(forward, list):
        print(f"{'backend':<25}{'batch':>6}{'clips/s':>10}{'TFLOP/s':>9}{'compile s':>10}{'GB':>7}")
        for row in forward:
            if "error" in row:
                print(f"{row['backend']:<25}{row['batch']:>6}  {row['error'][:60]}")
                continue
            print(
                f"{row['backend']:<25}{row['batch']:>6}{row['clips_per_s']:>10.1f}"
                f"{row['tflops']:>9.1f}{row.get('compile_s', float('nan')):>10.1f}"
                f"{row.get('memory_gb', float('nan')):>7.1f}"
            )
    print(f"end_to_end: {json.dumps(results.get('end_to_end'))}")
    print(f"features: {json.dumps(results.get('features'))}")
    print(f"section seconds: {results.get('section_seconds')}")


if __name__ == "__main__":
    sys.exit(main())
