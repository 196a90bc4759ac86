#!/usr/bin/env python3
"""Set up a local virtual environment and run the project's main job or its test suite.

Usage (from a fresh clone, with only ``python3`` present):

    python3 tasks.py run     # install ast-jax into .venv, classify the bundled example clips
    python3 tasks.py test    # install ast-jax with its test and export extras, lint, run the tests
    python3 tasks.py bench   # install the benchmark extras, run every benchmark, write RESULTS.md

Everything is installed from the project's own ``pyproject.toml``; nothing is assumed preinstalled.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if sys.platform == "win32" else "bin")
EXAMPLES = sorted((ROOT / "examples" / "audio").glob("kws_*.wav"))


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True)


def _setup(extras: str) -> None:
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    target = f".[{extras}]" if extras else "."
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", target)


def run() -> None:
    _setup("")
    # The bundled keyword-spotting model (ast_jax/models/kws12) on the bundled example clips.
    _run(BIN / "ast-jax", "classify", *EXAMPLES, "--top-k", "3")


def test() -> None:
    _setup("test,export")  # export: the ONNX converter and runtime the export tests use
    _run(BIN / "ruff", "format", "--check", ".")
    _run(BIN / "ruff", "check", ".")
    _run(BIN / "python", "-m", "pytest", "-q")


def bench() -> None:
    _setup("test,export,bench")
    _run(BIN / "python", ROOT / "benchmarks" / "run_all.py", *sys.argv[2:])


if __name__ == "__main__":
    commands = {"run": run, "test": test, "bench": bench}
    if (
        len(sys.argv) < 2
        or sys.argv[1] not in commands
        or (sys.argv[1] != "bench" and sys.argv[2:])
    ):
        sys.exit("usage: python3 tasks.py {run|test|bench [--quick]}")
    try:
        commands[sys.argv[1]]()
    except subprocess.CalledProcessError as error:
        sys.exit(error.returncode)
