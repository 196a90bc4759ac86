#!/usr/bin/env python3
"""Run every benchmark and write benchmarks/RESULTS.md from this run's numbers.

Each benchmark runs in its own process (its peak RSS is recorded) and writes JSON lines into a
fresh folder `benchmarks/results/run-<UTC time>/`; a failed benchmark is reported and the others
still run. On a machine whose JAX backend is a GPU the accelerator benchmark runs too; elsewhere
RESULTS.md carries the last accelerator run committed as `benchmarks/results/accelerator.json`
(and `xla_flags.json`), labelled with its card and date.

    python benchmarks/run_all.py            # forward at batch 1, 8, 32 and train: ~20 min, 2 cores
    python benchmarks/run_all.py --quick    # batch 1 and 8, fewer repeats: ~15 min
    python benchmarks/run_all.py --render benchmarks/results/run-...  # re-render a past run
    python benchmarks/run_all.py --steps gemm train features --output /tmp/RESULTS.md  # a subset

`python3 tasks.py bench` installs what the benchmarks need and runs this; the torchaudio column
comes from its own environment, which the `torchaudio_setup` step builds (`setup_torchaudio.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from common import RESULTS_DIR, environment, git_commit

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
ACCELERATOR = RESULTS_DIR / "accelerator.json"
XLA_FLAGS = RESULTS_DIR / "xla_flags.json"


def _steps(quick: bool, gpu: bool, smoke: bool) -> list[tuple[str, list[str]]]:
    """(name, arguments) per benchmark; each writes `<run folder>/<name>.jsonl`."""
    if smoke:  # every script once, at the smallest sizes: checks the pipeline, measures nothing
        return [
            ("gemm", ["bench_gemm.py", "--repeats", "1"]),
            ("model", ["bench_model.py", "--batch-sizes", "1", "--repeats", "1", "--warmup", "0"]),
            ("train", ["bench_train.py", "--tiny", "--repeats", "1", "--warmup", "0"]),
            ("startup", ["bench_startup.py", "--repeats", "1"]),
            ("features", ["bench_features.py", "--batch-sizes", "2", "--repeats", "1"]),
            ("classify", ["bench_classify.py", "--clips", "2", "--repeats", "1", "--models",
                          "kws12", "tiny"]),
            ("export", ["bench_export.py", "--models", "kws12", "--batch-sizes", "1",
                        "--repeats", "1"]),
        ]  # fmt: skip
    model_1_8 = ["bench_model.py", "--batch-sizes", "1", "8", "--repeats", "3" if quick else "5"]
    steps = [
        ("gemm", ["bench_gemm.py"]),
        ("model", model_1_8),
        # full-size train step, JAX vs PyTorch, batch 2: ~2 min on 2 cores
        ("train", ["bench_train.py", "--repeats", "2" if quick else "3"]),
        # torchaudio in its own environment, for the feature benchmark: ~10 s
        ("torchaudio_setup", ["setup_torchaudio.py"]),
        ("features", ["bench_features.py", "--batch-sizes", "1", "32"]),
        ("classify", ["bench_classify.py", "--clips", "16", "--repeats", "2"]),
        # fresh processes: import, --help, classify one clip with and without the cache: ~1 min
        ("startup", ["bench_startup.py"]),
        # onnxruntime and the StableHLO artifact vs jitted JAX, kws12 and full size: ~4 min
        ("export", ["bench_export.py", "--repeats", "3" if quick else "5"]),
    ]
    if not quick:  # batch 32: ~40 s per call and backend on 2 cores
        batch_32 = ["bench_model.py", "--batch-sizes", "32", "--repeats", "2", "--warmup", "0"]
        steps.insert(2, ("model", batch_32))
    if gpu:
        steps.append(("accelerator", ["bench_accelerator.py"]))
    return steps


def _run(name: str, arguments: list[str], folder: Path) -> dict:
    """Runs one benchmark script; returns its wall time, peak RSS and exit status."""
    output = folder / (f"{name}.json" if name == "accelerator" else f"{name}.jsonl")
    command = [sys.executable, str(HERE / arguments[0]), *arguments[1:], "--output", str(output)]
    print(f"\n=== {name}: {' '.join(arguments)}", flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=HERE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "name": name,
        "arguments": arguments,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_gb": usage.ru_maxrss / 1e6,  # Linux reports kilobytes
        "returncode": process.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 and 8 only, fewer repeats")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; writes to --output")
    parser.add_argument("--output", type=Path, default=RESULTS_MD)
    parser.add_argument(
        "--render", type=Path, metavar="RUN_DIR", help="only rewrite --output from a past run"
    )
    parser.add_argument(
        "--steps",
        nargs="+",
        metavar="NAME",
        help="run only these benchmarks (e.g. gemm train features); needs another --output",
    )
    args = parser.parse_args()
    if args.render is not None:
        run = json.loads((args.render / "run.json").read_text())
        accelerator = args.render / "accelerator.json"
        accelerator = accelerator if accelerator.is_file() else ACCELERATOR
        from results_md import render

        args.output.write_text(render(args.render, run, accelerator, XLA_FLAGS))
        print(f"wrote {args.output} from {args.render}")
        return

    import jax

    gpu = jax.default_backend() == "gpu"
    stamp = datetime.now(timezone.utc)
    folder = RESULTS_DIR / f"run-{stamp:%Y%m%dT%H%M%SZ}"
    folder.mkdir(parents=True)
    run = {
        "started": stamp.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "load_average_start": os.getloadavg(),
        "environment": environment(),
        "steps": [],
    }
    if args.smoke and args.output == RESULTS_MD:
        parser.error("--smoke measures nothing: give another --output than RESULTS.md")
    if args.steps and args.output == RESULTS_MD:
        parser.error("--steps leaves out benchmarks: give another --output than RESULTS.md")
    steps = _steps(args.quick, gpu, args.smoke)
    if args.steps:
        steps = [step for step in steps if step[0] in args.steps]
    for name, arguments in steps:
        run["steps"].append(_run(name, arguments, folder))
    run["load_average_end"] = os.getloadavg()
    (folder / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    accelerator = folder / "accelerator.json" if gpu else ACCELERATOR
    from results_md import render

    args.output.write_text(render(folder, run, accelerator, XLA_FLAGS))
    print(f"\nwrote {args.output} from {folder}")
    failed = [step["name"] for step in run["steps"] if step["returncode"]]
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
