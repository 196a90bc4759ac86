#!/usr/bin/env python3
"""Exported artifacts on this CPU: onnxruntime and the StableHLO artifact against jitted JAX.

For each model (the bundled kws12 and a randomly initialised full-size AudioSet AST), the waveform
-> logits artifacts are exported (`ast_jax.export`: StableHLO for cpu, cuda and tpu; ONNX), their
export time and size recorded, and three backends timed on the same padded waveforms:

* ``jax``: `ast_jax.logits_from_waveforms` jitted, params as arguments (ast_jax's own program);
* ``stablehlo``: the serialized artifact, deserialized and jitted (parameters baked in);
* ``onnxruntime``: the ONNX artifact in an `InferenceSession` (CPU provider, default threads).

Per batch size: median milliseconds per clip over ``--repeats`` rounds after a warm-up call (one
call of each backend per round, so load changes hit them alike), each backend's ratio to ``jax``
(> 1: slower than JAX), and the largest logit difference from ``jax``.

    .venv/bin/python benchmarks/bench_export.py [--models kws12 full] [--batch-sizes 1 8]

Prints one JSON line per (model, backend, batch) and a table; `--output FILE` appends the lines.
Needs the ``export`` extra (jax2onnx, onnxruntime). The load average is recorded with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import jax
import numpy as np
import onnxruntime
from common import append_jsonl, environment

from ast_jax import (
    ASTConfig,
    FeatureExtractor,
    bundled_model_path,
    load_feature_extractor,
    load_pretrained,
    logits_from_waveforms,
)
from ast_jax.export.onnx import export_onnx
from ast_jax.export.stablehlo import DEFAULT_PLATFORMS, export_stablehlo
from ast_jax.model.attention import attention_rule
from ast_jax.model.params import init_params

AUDIOSET = ASTConfig.from_preset("MIT/ast-finetuned-audioset-10-10-0.4593")  # 768 wide, 12 layers


def _model(name: str) -> tuple[ASTConfig, dict, FeatureExtractor]:
    if name == "kws12":
        path = bundled_model_path(name)
        config, params = load_pretrained(path)
        return config, params, load_feature_extractor(path)
    # Random full-size weights; timm's init for tokens and positions so that they are not zero.
    params = jax.tree.map(np.asarray, init_params(AUDIOSET, 0, scratch=True))
    return AUDIOSET, params, FeatureExtractor()


def _timed(make: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = make()
    return value, time.perf_counter() - start


def _interleaved(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per backend after one untimed call each, one call per backend per round."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _bench(name: str, batch_sizes: list[int], repeats: int, scratch: Path) -> list[dict]:
    config, params, extractor = _model(name)
    parameters = sum(np.size(leaf) for leaf in jax.tree.leaves(params))
    exported, stablehlo_s = _timed(lambda: export_stablehlo(config, params, extractor))
    stablehlo_bytes = exported.serialize()
    onnx_model, onnx_s = _timed(lambda: export_onnx(config, params, extractor))
    onnx_path = scratch / f"{name}.onnx"
    onnx_path.write_bytes(onnx_model.SerializeToString())
    del onnx_model
    artifacts = {
        "stablehlo": {"export_s": stablehlo_s, "bytes": len(stablehlo_bytes)},
        "onnxruntime": {"export_s": onnx_s, "bytes": onnx_path.stat().st_size},
        "jax": {"export_s": None, "bytes": None},
    }
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(
        str(onnx_path), options, providers=["CPUExecutionProvider"]
    )
    loaded = jax.export.deserialize(bytearray(stablehlo_bytes))
    artifact = jax.jit(loaded.call)
    # Configs bound outside jit: hashing them on every call would be timed too.
    jitted = jax.jit(partial(logits_from_waveforms, config=config, extractor=extractor))
    device_params = jax.device_put(params)
    rows = []
    for batch in batch_sizes:
        rng = np.random.default_rng(batch)
        size = extractor.samples_needed
        waveforms = (0.1 * rng.standard_normal((batch, size))).astype(np.float32)
        lengths = np.full(batch, size, np.int32)
        lengths[batch // 2 :] = size * 3 // 4  # some padded clips

        def run_jax(w=waveforms, n=lengths):
            return jitted(device_params, w, lengths=n).block_until_ready()

        calls = {
            "jax": run_jax,
            "stablehlo": lambda w=waveforms, n=lengths: artifact(w, n).block_until_ready(),
            "onnxruntime": lambda w=waveforms, n=lengths: session.run(
                ["logits"], {"waveforms": w, "lengths": n}
            )[0],
        }
        (_, compile_s) = _timed(run_jax)
        outputs = {backend: np.asarray(call()) for backend, call in calls.items()}
        seconds = _interleaved(calls, repeats)
        for backend, value in seconds.items():
            rows.append(
                {
                    "benchmark": "export",
                    "model": name,
                    "parameters": int(parameters),
                    "tokens": config.seq_len,
                    "attention": attention_rule(config, "cpu"),  # all three backends
                    "backend": backend,
                    "batch_size": batch,
                    "ms_per_clip": 1e3 * value / batch,
                    "ratio_to_jax": value / seconds["jax"],
                    "max_abs_diff_vs_jax": float(np.abs(outputs[backend] - outputs["jax"]).max()),
                    "logit_scale": float(np.abs(outputs["jax"]).max()),
                    "jax_first_call_s": compile_s if backend == "jax" else None,
                    "artifact_bytes": artifacts[backend]["bytes"],
                    "export_s": artifacts[backend]["export_s"],
                    "platforms": list(DEFAULT_PLATFORMS) if backend == "stablehlo" else None,
                    "load_average": os.getloadavg()[0],
                    "onnxruntime": onnxruntime.__version__,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=["kws12", "full"], default=["kws12", "full"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, help="append the JSON lines to this file")
    args = parser.parse_args()
    env = environment(onnxruntime=onnxruntime.__version__)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            rows += _bench(name, args.batch_sizes, args.repeats, Path(scratch))
    for row in rows:
        row["environment"] = env
    if args.output:
        append_jsonl(args.output, rows)
    print(
        f"\n{'model':>6} {'backend':>12} {'batch':>5} {'ms/clip':>9} {'x jax':>6} {'max diff':>9}"
    )
    for row in rows:
        print(
            f"{row['model']:>6} {row['backend']:>12} {row['batch_size']:>5} "
            f"{row['ms_per_clip']:9.2f} {row['ratio_to_jax']:6.2f} "
            f"{row['max_abs_diff_vs_jax']:9.2e}"
        )


if __name__ == "__main__":
    main()
