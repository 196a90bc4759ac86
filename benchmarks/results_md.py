"""Render benchmarks/RESULTS.md from one `run_all.py` run folder (and the accelerator JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import AUDIOSET_CONFIG, forward_flops

# Issue 7's targets, checked against the numbers of the run.
CPU_SPEEDUP_TARGET = 1.25  # JAX float32 vs transformers SDPA, batch 1 and 8
GEMM_FRACTION_TARGET = 0.80  # of the measured float32 GEMM peak
GPU_CLIPS_TARGET = 1500  # bf16 clips/s on one H100
GPU_SPEEDUP_TARGET = 2.0  # vs PyTorch fp16 SDPA
# Targets of the features and train-step work: features at batch 32, and the train step.
FEATURE_TARGET_BATCH = 32
FEATURE_MS_TARGET = 0.6  # ms per 10-s clip
FEATURE_VS_TORCHAUDIO_TARGET = 3.0
FEATURE_VS_HF_TARGET = 30.0
TRAIN_SPEEDUP_TARGET = 1.5  # JAX vs PyTorch SDPA
FULL_SIZE_GFLOP = forward_flops(AUDIOSET_CONFIG) / 1e9


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _f(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _loads(values: list[float]) -> str:
    return "/".join(f"{value:.2f}" for value in values)


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _machine(run: dict) -> list[str]:
    env = run["environment"]
    return [
        f"Run of {run['started']} at commit `{run['commit']}`: {env['cpu']}, "
        f"{env['cpu_count']} cores, JAX device `{env['jax_device']}`; "
        + ", ".join(f"{name} {version}" for name, version in env["versions"].items())
        + ".",
        f"Load average (1/5/15 min) at the start {_loads(run['load_average_start'])}, at the end "
        f"{_loads(run['load_average_end'])}: on a shared machine "
        "timings move with it; each model table times its backends in interleaved rounds.",
        "",
        "Wall time and peak RSS per benchmark process:",
        "",
        *_table(
            ["benchmark", "arguments", "seconds", "peak RSS GB", "exit"],
            [
                [
                    step["name"],
                    f"`{' '.join(step['arguments'])}`",
                    _f(step["seconds"]),
                    _f(step["peak_rss_gb"], 2),
                    str(step["returncode"]),
                ]
                for step in run["steps"]
            ],
        ),
    ]


def _cpu_model(folder: Path) -> tuple[list[str], list[str]]:
    """The forward table and the CPU target lines."""
    rows = _read_jsonl(folder / "model.jsonl")
    peak_rows = [row for row in _read_jsonl(folder / "gemm.jsonl") if row["benchmark"] == "gemm"]
    peak = _gemm_peak(folder)
    lines = [
        "## CPU: model forward",
        "",
        "Full-size AST (768 x 12 layers, patch stride 10/10, 1024 frames, 1214 tokens, 527 labels; "
        f"{FULL_SIZE_GFLOP:.1f} GFLOP per clip counting multiply-adds as 2), random weights shared "
        "by every backend "
        '(`bench_model.py`). JAX float32 uses the default attention (`attention="auto"`, the '
        "per-head loop on a CPU); `jax-float32-per-example` maps the batch one clip at a time "
        "(`ast_jax.per_example`, what `AudioClassifier` runs on one CPU device); the ratio "
        "is transformers SDPA's time over the row's.",
        "",
    ]
    if peak is not None:
        shapes = ", ".join(
            f"{'x'.join(map(str, row['shape']))}: {row['gflops']:.0f}" for row in peak_rows
        )
        lines += [
            f"Measured float32 GEMM peak (`bench_gemm.py`, JAX/XLA, GFLOP/s by M x K x N): "
            f"{shapes}; peak **{peak:.0f} GFLOP/s**.",
            "",
        ]
    lines += _table(
        [
            "backend",
            "batch",
            "ms/clip",
            "GFLOP/s",
            "% of GEMM peak",
            "x vs SDPA",
            "compile s",
            "XLA memory GB",
        ],
        [
            [
                row["backend"],
                str(row["batch"]),
                _f(row["ms_per_clip"]),
                _f(row["gflops"]),
                _f(100 * row["gflops"] / peak if peak else None, 0),
                _f(row["speedup_vs_torch_sdpa"], 2),
                _f(row["compile_s"]),
                _f(row.get("memory_gb"), 2),
            ]
            for row in rows
        ],
    )
    targets = []
    for batch, backend in ((1, "jax-float32"), (8, "jax-float32"), (8, "jax-float32-per-example")):
        jax_row = next((r for r in rows if r["backend"] == backend and r["batch"] == batch), None)
        if jax_row is None or jax_row["speedup_vs_torch_sdpa"] is None:
            continue
        ratio = jax_row["speedup_vs_torch_sdpa"]
        targets.append(
            f"- {backend} vs transformers SDPA at batch {batch}: {ratio:.2f}x "
            f"(target >= {CPU_SPEEDUP_TARGET}x: {_met(ratio >= CPU_SPEEDUP_TARGET)})"
        )
        if peak:
            fraction = jax_row["gflops"] / peak
            targets.append(
                f"- {backend} at batch {batch}: {jax_row['gflops']:.0f} GFLOP/s, "
                f"{100 * fraction:.1f}% of the measured GEMM peak "
                f"(target >= {100 * GEMM_FRACTION_TARGET:.0f}%: "
                f"{_met(fraction >= GEMM_FRACTION_TARGET)})"
            )
    return lines, targets


def features_section(
    rows: list[dict], setup: dict | None = None, title: str = "## CPU: feature extraction"
) -> tuple[list[str], list[str]]:
    """The `bench_features.py` rows as a section, and their target lines; ``setup`` is
    `setup_torchaudio.py`'s check of the torchaudio environment, if it ran."""
    if not rows:
        return [], []
    lines = [
        title,
        "",
        "10-s clips, AudioSet settings (128 mel bins, 1024 frames), ms per clip, medians of "
        "interleaved rounds (`bench_features.py`). NumPy: the `FeatureExtractor` (frames and FFT "
        "in float64); NumPy f32: `fbank_stacked(dtype=np.float32)`, torchaudio's precision, "
        "log-mel only. transformers' `ASTFeatureExtractor` runs its NumPy path (no torchaudio in "
        "the project's environment). torchaudio: the original recipe's per-clip `kaldi.fbank` + "
        "pad + normalise, in its own environment (`setup_torchaudio.py`) on the same clips, with "
        "the faster of 1 and 2 torch threads. `x`: the other's time over ast-jax's.",
        "",
    ]
    lines += _table(
        [
            "batch",
            "NumPy",
            "NumPy f32",
            "JAX",
            "transformers",
            "torchaudio",
            "NumPy x transformers",
            "NumPy x torchaudio",
            "f32 x torchaudio",
            "JAX x transformers",
            "JAX compile s",
            "load",
        ],
        [
            [
                str(row["batch_size"]),
                _f(row["ast_jax_ms_per_clip"], 2),
                _f(row.get("ast_jax_fbank_float32_ms_per_clip"), 2),
                _f(row["ast_jax_jax_ms_per_clip"], 2),
                _f(row["transformers_ms_per_clip"], 2),
                _f(row.get("torchaudio_ms_per_clip"), 2),
                _f(row["speedup"]),
                _f(row.get("torchaudio_speedup")),
                _f(row.get("torchaudio_float32_speedup")),
                _f(row["jax_speedup"]),
                _f(row["ast_jax_jax_compile_s"], 2),
                _f(row["load_average"][0], 2) if "load_average" in row else "-",
            ]
            for row in rows
        ],
    )
    if setup:
        lines += [
            "",
            f"The torchaudio environment's `kaldi.fbank` (torchaudio {setup['torchaudio']}) "
            f"reproduces the {setup['cases']} stored torchaudio cases of `tests/data` within "
            f"{setup['max_abs_diff']:.1e}.",
        ]
    float32 = [row for row in rows if "float32_log_max_abs_diff_vs_float64" in row]
    if float32:
        worst = max(row["float32_log_max_abs_diff_vs_float64"] for row in float32)
        lines += [
            "",
            f"float32 frames and FFT move the log-mel by at most {worst:.1e} from float64 on "
            "these clips (docs/numerics.md, Precision).",
        ]
    knf = [row for row in rows if "knf_80_bins_ms_per_clip" in row]
    if knf:
        lines += [
            "",
            "kaldi-native-fbank refuses 128 mel bins on 25-ms frames (an empty filter), so it is "
            "compared at 80 bins with ast-jax's `fbank` (ms per clip, per-clip calls):",
            "",
            *_table(
                ["batch", "kaldi-native-fbank", "ast-jax fbank", "x", "max log diff"],
                [
                    [
                        str(row["batch_size"]),
                        _f(row["knf_80_bins_ms_per_clip"], 2),
                        _f(row["ast_jax_fbank_80_bins_ms_per_clip"], 2),
                        _f(
                            row["knf_80_bins_ms_per_clip"]
                            / row["ast_jax_fbank_80_bins_ms_per_clip"]
                        ),
                        f"{row['knf_80_bins_log_max_abs_diff']:.1e}",
                    ]
                    for row in knf
                ],
            ),
        ]
    return lines, _feature_targets(rows)


def _feature_targets(rows: list[dict]) -> list[str]:
    """The feature targets at batch 32, and JAX's per-clip cost at batch 32 vs batch 1."""
    targets = []
    for row in rows:
        if row["batch_size"] != FEATURE_TARGET_BATCH:
            continue
        for label, key, torchaudio_key in (
            ("NumPy (float64)", "ast_jax_ms_per_clip", "torchaudio_speedup"),
            (
                "NumPy float32 fbank",
                "ast_jax_fbank_float32_ms_per_clip",
                "torchaudio_float32_speedup",
            ),
        ):
            if key not in row:
                continue
            ms, versus_hf = row[key], row["transformers_ms_per_clip"] / row[key]
            versus_ta = row.get(torchaudio_key)
            targets.append(
                f"- Features, {label}, batch {FEATURE_TARGET_BATCH}: {ms:.2f} ms/clip (target <= "
                f"{FEATURE_MS_TARGET} ms: {_met(ms <= FEATURE_MS_TARGET)}), {versus_hf:.1f}x "
                f"transformers (target >= {FEATURE_VS_HF_TARGET}x: "
                f"{_met(versus_hf >= FEATURE_VS_HF_TARGET)}), {_f(versus_ta)}x torchaudio "
                f"(target >= {FEATURE_VS_TORCHAUDIO_TARGET}x: "
                f"{_met(versus_ta is not None and versus_ta >= FEATURE_VS_TORCHAUDIO_TARGET)})"
            )
    by_batch = {row["batch_size"]: row["ast_jax_jax_ms_per_clip"] for row in rows}
    if 1 in by_batch and FEATURE_TARGET_BATCH in by_batch:
        ratio = by_batch[FEATURE_TARGET_BATCH] / by_batch[1]
        targets.append(
            f"- Features, JAX per clip at batch {FEATURE_TARGET_BATCH} over batch 1: {ratio:.2f} "
            f"(target <= 1: {_met(ratio <= 1.0)})"
        )
    return targets


def _gemm_peak(folder: Path) -> float | None:
    """The run's measured float32 GEMM peak in GFLOP/s (`bench_gemm.py`), if it ran."""
    rows = [row for row in _read_jsonl(folder / "gemm.jsonl") if row["benchmark"] == "gemm"]
    return max((row["gflops"] for row in rows), default=None)


def train_section(
    rows: list[dict], peak: float | None, title: str = "## CPU: train step"
) -> tuple[list[str], list[str]]:
    """The `bench_train.py` rows as a section, and their target lines; ``peak`` is the GEMM
    peak in GFLOP/s."""
    if not rows:
        return [], []
    lines = [
        title,
        "",
        "One optimiser step (forward, backward, Adam) of the full-size AudioSet AST, random "
        "weights and batch shared by both (`bench_train.py`): ast-jax's jitted train step vs "
        "transformers SDPA + `torch.optim.Adam` (torch threads = cores), timed in interleaved "
        f"rounds. {3 * FULL_SIZE_GFLOP:.0f} GFLOP per example (three forward passes); `x`: "
        "PyTorch's time over the row's.",
        "",
        *_table(
            [
                "backend",
                "model",
                "dtype",
                "batch",
                "ms/example",
                "GFLOP/s",
                "% of GEMM peak",
                "x vs PyTorch",
                "compile s",
                "load",
            ],
            [
                [
                    row["backend"],
                    row["model"],
                    row["dtype"],
                    str(row["batch"]),
                    _f(row["ms_per_example"]),
                    _f(row["gflops"]),
                    _f(100 * row["gflops"] / peak if peak else None, 0),
                    _f(row["speedup_vs_torch"], 2),
                    _f(row["compile_s"]),
                    _f(row["load_average"][0], 2),
                ]
                for row in rows
            ],
        ),
    ]
    targets = [
        f"- Train step, JAX vs PyTorch SDPA at batch {row['batch']} ({row['model']}, "
        f"{row['dtype']}): {row['speedup_vs_torch']:.2f}x (target >= {TRAIN_SPEEDUP_TARGET}x: "
        f"{_met(row['speedup_vs_torch'] >= TRAIN_SPEEDUP_TARGET)})"
        + (f", {100 * row['gflops'] / peak:.0f}% of the GEMM peak" if peak else "")
        for row in rows
        if row["backend"] == "jax"
    ]
    return lines, targets


def startup_section(
    rows: list[dict], title: str = "## CPU: cold start"
) -> tuple[list[str], list[str]]:
    """The `bench_startup.py` row (the last) as a section, and its target lines."""
    if not rows:
        return [], []
    row = rows[-1]
    medians, minima, targets = row["median_seconds"], row["min_seconds"], row["targets"]
    names = {
        "import": "`python -c 'import ast_jax'`",
        "help": "`ast-jax --help`",
        "classify_warm_cache": "`ast-jax classify` one 1-s clip, bundled model, cache warm",
        "classify_no_cache": "the same, `--no-compilation-cache` (a machine's first run)",
    }
    lines = [
        title,
        "",
        "Each a fresh process, as a user runs it, in interleaved rounds (`bench_startup.py`, "
        f"{row['repeats']} rounds, load average {row['load_average']}).",
        "",
        *_table(
            ["command", "median s", "min s", "target s"],
            [
                [names[name], _f(medians[name], 2), _f(minima[name], 2), _f(targets.get(name))]
                for name in medians
            ],
        ),
    ]
    target_lines = [
        f"- {names[name]}: {medians[name]:.2f} s median (target <= {limit} s on a quiet machine: "
        f"{_met(medians[name] <= limit)}; load average {row['load_average']})"
        for name, limit in targets.items()
    ]
    return lines, target_lines


def _classify(folder: Path) -> list[str]:
    rows = _read_jsonl(folder / "classify.jsonl")
    return [
        "## CPU: files -> labels",
        "",
        "`AudioClassifier.classify` over a folder of 10-s WAVs (decode, window, features, "
        "jitted model, aggregation; `bench_classify.py`); `full-transformers` is the same "
        "full-size weights through soundfile + `ASTFeatureExtractor` + the PyTorch model.",
        "",
        *_table(
            [
                "model",
                "parameters",
                "clips",
                "batch",
                "load + compile s",
                "clips/s",
                "x real time",
            ],
            [
                [
                    row["model"],
                    f"{row['parameters']:,}",
                    str(row["clips"]),
                    str(row["batch_size"]),
                    _f(row["load_and_compile_s"], 2),
                    _f(row["clips_per_s"], 2),
                    _f(row["audio_seconds_per_s"]),
                ]
                for row in rows
            ],
        ),
    ]


def export_section(rows: list[dict], title: str = "## CPU: exported artifacts") -> list[str]:
    """The `bench_export.py` rows as a section (nothing when there are none)."""
    if not rows:
        return []
    sizes = {
        (row["model"], row["backend"]): row for row in rows if row["artifact_bytes"] is not None
    }
    return [
        title,
        "",
        "Waveforms -> logits on this CPU (`bench_export.py`): `jax` is "
        "`ast_jax.logits_from_waveforms` jitted (params as arguments), `stablehlo` the "
        "`ast-jax export` artifact (cpu/cuda/tpu, parameters baked in) deserialized and jitted, "
        "`onnxruntime` the ONNX artifact (CPU provider, default threads). ms per clip: median of "
        "interleaved rounds; `x jax` is the row's time over jax's (> 1: slower); max diff: largest "
        "logit difference from jax.",
        "",
        *_table(
            ["model", "backend", "batch", "ms/clip", "x jax", "max diff", "load"],
            [
                [
                    row["model"],
                    row["backend"],
                    str(row["batch_size"]),
                    _f(row["ms_per_clip"], 2),
                    _f(row["ratio_to_jax"], 2),
                    f"{row['max_abs_diff_vs_jax']:.1e}",
                    _f(row["load_average"], 2),
                ]
                for row in rows
            ],
        ),
        "",
        "Artifacts: "
        + "; ".join(
            f"{model} {backend} {row['artifact_bytes'] / 1e6:.1f} MB "
            f"(exported in {row['export_s']:.1f} s)"
            for (model, backend), row in sizes.items()
        )
        + ".",
    ]


def _accelerator(path: Path, flags_path: Path) -> tuple[list[str], list[str]]:
    if not path.is_file():
        return ["## Accelerator", "", "No accelerator run recorded."], []
    acc = json.loads(path.read_text())
    versions = ", ".join(f"{k} {v}" for k, v in acc["versions"].items())
    ceiling = acc.get("ceiling", {})
    bf16_peak = ceiling.get("bf16_tflops")
    lines = [
        "## Accelerator",
        "",
        f"`bench_accelerator.py` on **{acc['torch_device']}** ({acc['timestamp']}, commit "
        f"`{acc.get('commit', 'unknown')}`; {versions}; "
        f"host CPU {acc['cpu']}, {acc['cpu_count']} cores). Full-size model, "
        f"{acc['forward_gflop_per_clip']:.1f} GFLOP per clip. Measured matrix rate (8192^3, random "
        f"operands): bf16 {_f(bf16_peak)} TFLOP/s, fp32 {_f(ceiling.get('fp32_tflops'))} TFLOP/s.",
        "",
        "Parity on the card (batch 8, fresh random inputs; reference: PyTorch float32, TF32 off):",
        "",
    ]
    parity = acc.get("parity", {})
    lines += _table(
        ["backend", "max abs logit diff", "relative L2", "top-1 agreement"],
        [
            [
                name,
                f"{p['max_abs_diff']:.2e}",
                f"{p['relative_l2']:.2e}",
                _f(p["top1_agreement"], 3),
            ]
            if "error" not in p
            else [name, p["error"][:60], "-", "-"]
            for name, p in parity.items()
            if isinstance(p, dict)
        ],
    )
    forward = acc.get("forward", [])
    torch16 = {r["batch"]: r for r in forward if r["backend"] == "torch-float16-sdpa"}
    lines += [
        "",
        "Forward throughput (inputs alternate between two buffers; medians). `jax-float32-xla` "
        "uses JAX's default float32 dot precision on a GPU (TF32 on this card); `-highest` is "
        "full float32, as PyTorch's default. This table ran at the commit above; the XLA-flags "
        "table below names the bf16 GELU form each of its rows ran with.",
        "",
        *_table(
            [
                "backend",
                "batch",
                "clips/s",
                "TFLOP/s",
                "% of bf16 peak",
                "x vs torch fp16",
                "compile s",
                "memory GB",
            ],
            [
                [
                    r["backend"],
                    str(r["batch"]),
                    _f(r.get("clips_per_s")),
                    _f(r.get("tflops")),
                    _f(100 * r["tflops"] / bf16_peak if "tflops" in r and bf16_peak else None, 0),
                    _f(
                        r["clips_per_s"] / torch16[r["batch"]]["clips_per_s"]
                        if "clips_per_s" in r and r["batch"] in torch16
                        else None,
                        2,
                    ),
                    _f(r.get("compile_s")),
                    _f(r.get("memory_gb")),
                ]
                for r in forward
            ],
        ),
    ]
    end = acc.get("end_to_end", {})
    if "speedup" in end:
        lines += [
            "",
            f"Waveforms -> logits, batch {end['batch']} of {end['clip_seconds']:.0f}-s clips: "
            f"ast-jax's one XLA program (features on the card, bf16, {end['jax_attention']} "
            f"attention) {end['ast_jax_clips_per_s']:.0f} clips/s vs transformers' extractor on "
            f"the host + PyTorch fp16 {end['transformers_clips_per_s']:.0f} clips/s "
            f"(**{end['speedup']:.1f}x**).",
        ]
    features = acc.get("features", {})
    if "ast_jax_jax_ms" in features:
        lines += [
            "",
            f"Features on that machine, batch {features['batch']} (ms per clip): ast-jax JAX on "
            f"the card {features['ast_jax_jax_ms']:.3f}, ast-jax NumPy on the host "
            f"{features['ast_jax_numpy_ms']:.2f}, torchaudio per clip "
            f"{_f(features.get('torchaudio_ms'), 2)}, transformers "
            f"{features['transformers_ms']:.2f}.",
        ]
        tap = features.get("torchaudio_parity")
        if tap:
            lines.append(
                f"Live torchaudio parity ({tap['cases']} fresh random signals): ast-jax `fbank` "
                f"within {tap['log_max_abs_diff_resolvable']:.1e} (log) of torchaudio on bands "
                f"within 70 dB of their frame's peak, {tap['log_max_abs_diff']:.1e} over all "
                "values (float32 FFT rounding far below the peak)."
            )
    if flags_path.is_file():
        flags = json.loads(flags_path.read_text())
        lines += [
            "",
            f"XLA flags (`bench_xla_flags.py`, {flags['device']}, {flags['model']}):",
            "",
            *_table(
                [
                    "bf16 GELU",
                    "variant",
                    "XLA_FLAGS",
                    "batch",
                    "clips/s",
                    "TFLOP/s",
                    "x vs torch fp16 (forward table's run)",
                ],
                [
                    [
                        r.get("bf16_gelu", "-"),
                        r["variant"],
                        f"`{r['xla_flags']}`" if r["xla_flags"] else "",
                        str(r["batch"]),
                        _f(r["clips_per_s"]),
                        _f(r["tflops"]),
                        _f(
                            r["clips_per_s"] / torch16[r["batch"]]["clips_per_s"]
                            if r["batch"] in torch16
                            else None,
                            2,
                        ),
                    ]
                    for r in flags["rows"]
                ],
            ),
        ]
    # Ratios only within one run: the forward table's best bf16 row against its own PyTorch rows;
    # the XLA-flag runs (no PyTorch rows of their own) are reported as throughput only.
    candidates = [
        (r["clips_per_s"], r["batch"], r["backend"])
        for r in forward
        if r["backend"].startswith("jax-bfloat16") and "clips_per_s" in r
    ]
    targets = []
    if candidates:
        clips, batch, label = max(candidates)
        ratio = clips / torch16[batch]["clips_per_s"] if batch in torch16 else None
        targets.append(
            f"- {acc['torch_device']}: JAX bf16 {clips:.0f} clips/s at batch {batch} ({label}, "
            f"default XLA flags; target >= {GPU_CLIPS_TARGET} on an H100, here on this card: "
            f"{_met(clips >= GPU_CLIPS_TARGET)}), "
            f"{_f(ratio, 2)}x PyTorch fp16 SDPA in the same run (target >= "
            f"{GPU_SPEEDUP_TARGET}x: {_met(ratio is not None and ratio >= GPU_SPEEDUP_TARGET)})"
        )
    if flags_path.is_file():
        clips, batch, variant, gelu = max(
            (r["clips_per_s"], r["batch"], r["variant"], r.get("bf16_gelu"))
            for r in json.loads(flags_path.read_text())["rows"]
        )
        targets.append(
            f"- {acc['torch_device']}: best XLA-flags run (`bench_xla_flags.py`, its own "
            f"session): JAX bf16 {clips:.0f} clips/s at batch {batch} ({variant} flags, GELU "
            f"{gelu})"
        )
    if "speedup" in end:
        targets.append(
            f"- {acc['torch_device']}: waveforms -> logits {end['speedup']:.1f}x transformers' "
            "host extractor + PyTorch fp16"
        )
    return lines, targets


def render(folder: Path, run: dict, accelerator: Path, flags: Path) -> str:
    """The whole RESULTS.md text."""
    model_lines, model_targets = _cpu_model(folder)
    feature_lines, feature_targets = features_section(
        _read_jsonl(folder / "features.jsonl"),
        next(iter(_read_jsonl(folder / "torchaudio_setup.jsonl")), None),
    )
    train_lines, train_targets = train_section(
        _read_jsonl(folder / "train.jsonl"), _gemm_peak(folder)
    )
    startup_lines, startup_targets = startup_section(_read_jsonl(folder / "startup.jsonl"))
    acc_lines, acc_targets = _accelerator(accelerator, flags)
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python benchmarks/run_all.py` from `{folder.relative_to(folder.parents[2])}`"
        " (not committed). Do not edit by hand: rerun it.",
        "",
        *_machine(run),
        "",
        "## Targets",
        "",
        *model_targets,
        *train_targets,
        *feature_targets,
        *startup_targets,
        *acc_targets,
        "",
        *model_lines,
        "",
        *train_lines,
        "",
        *feature_lines,
        "",
        *_classify(folder),
        "",
        *startup_lines,
        "",
        *export_section(_read_jsonl(folder / "export.jsonl")),
        "",
        *acc_lines,
    ]
    return "\n".join(lines) + "\n"
