#!/usr/bin/env python3
"""Cold start of the command line: ``import ast_jax``, ``ast-jax --help``, and classifying one
1-s clip with the bundled model, each a fresh process, as a user runs them.

The classify run is timed with the persistent compilation cache warm (the program compiled by an
earlier run is loaded: what every run after the first on a machine sees) and with the cache turned
off (``--no-compilation-cache``: what the first run sees). The commands run in interleaved rounds,
so that a change in the machine's load moves them alike; medians and minima are reported with the
load average.

    .venv/bin/python benchmarks/bench_startup.py [--repeats 7]

Prints a table and appends one JSON line to ``--output`` (benchmarks/results/startup.jsonl).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS_DIR, append_jsonl, environment

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "examples" / "audio" / "kws_yes.wav"
CLI = [sys.executable, "-m", "ast_jax.cli"]
# Targets of the performance plan, quiet machine.
TARGETS = {"help": 0.5, "classify_warm_cache": 1.5}


def commands() -> dict[str, list[str]]:
    """The timed commands by name."""
    classify = [*CLI, "classify", str(CLIP), "--top-k", "1"]
    return {
        "import": [sys.executable, "-c", "import ast_jax"],
        "help": [*CLI, "--help"],
        "classify_warm_cache": classify,
        "classify_no_cache": [*CLI, "--no-compilation-cache", *classify[3:]],
    }


def run_seconds(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one process, start to exit; it must succeed."""
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "startup.jsonl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "AST_JAX_COMPILATION_CACHE": cache}
        timed = commands()
        run_seconds(timed["classify_warm_cache"], env)  # fills the cache
        times: dict[str, list[float]] = {name: [] for name in timed}
        loads = []
        for _ in range(args.repeats):
            loads.append(os.getloadavg()[0])
            for name, command in timed.items():
                times[name].append(run_seconds(command, env))
    row = environment(
        benchmark="startup",
        repeats=args.repeats,
        load_average=round(statistics.mean(loads), 2),
        median_seconds={name: round(statistics.median(t), 3) for name, t in times.items()},
        min_seconds={name: round(min(t), 3) for name, t in times.items()},
        targets=TARGETS,
    )
    append_jsonl(args.output, [row])
    print(f"{'command':<22}{'median s':>10}{'min s':>8}{'target s':>10}")
    for name in timed:
        target = TARGETS.get(name)
        print(
            f"{name:<22}{row['median_seconds'][name]:>10.3f}{row['min_seconds'][name]:>8.3f}"
            f"{'' if target is None else f'{target:.1f}':>10}"
        )
    print(f"load average during the run: {row['load_average']}")


if __name__ == "__main__":
    main()
