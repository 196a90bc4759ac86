#!/usr/bin/env python3
"""Set up the torchaudio environment that `bench_features.py` times torchaudio's Kaldi fbank in.

torchaudio stays out of the project's own environment: with it installed, transformers'
`ASTFeatureExtractor` leaves the NumPy path that the parity tests compare against. PyPI has no
torchaudio for the project's torch 2.13 CPU build, and its Linux wheels are CUDA builds: their
compiled extension needs ``libc10_cuda.so``, which a CPU torch lacks (a matching CUDA torch from
PyPI is several GB). `torchaudio.compliance.kaldi` is pure Python on torch operators, though, so
this script builds a small virtual environment that

1. sees the project environment's packages (torch, NumPy, ast-jax) through a ``.pth`` file,
2. adds torchaudio `TORCHAUDIO_VERSION` from PyPI without dependencies (a 1.8 MB wheel),
3. removes the wheel's compiled extension, which torchaudio then treats as absent (its
   ``_extension._load_lib`` skips missing files), leaving the pure-Python modules, and
4. checks that `kaldi.fbank` there reproduces the torchaudio outputs stored in
   ``tests/data/kaldi_fbank_torchaudio.npz`` (made by an unmodified torchaudio).

    .venv/bin/python benchmarks/setup_torchaudio.py   # -> build/torchaudio-venv (git-ignored)

`run_all.py` runs it before the feature benchmark.
"""

from __future__ import annotations

import argparse
import json
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

from common import append_jsonl

REPO = Path(__file__).resolve().parent.parent
DEFAULT_VENV = REPO / "build" / "torchaudio-venv"
TORCHAUDIO_VERSION = "2.11.0"
FIXTURES = REPO / "tests" / "data" / "kaldi_fbank_torchaudio.npz"

# Run inside the new environment: every stored case through its kaldi.fbank, largest difference.
_CHECK = """
import json, sys
import numpy as np, torch, torchaudio
import torchaudio.compliance.kaldi as kaldi
data = np.load(sys.argv[1])
worst = 0.0
names = sorted(k[:-len("_fbank")] for k in data.files if k.endswith("_fbank"))
for case in names:
    wave = data["wave_" + str(data[case + "_name"]).split("/")[0]]
    kwargs = json.loads(str(data[case + "_kwargs"]))
    ours = kaldi.fbank(torch.from_numpy(wave)[None], **kwargs).numpy()
    worst = max(worst, float(np.abs(ours - data[case + "_fbank"]).max()))
print(json.dumps(dict(torchaudio=torchaudio.__version__, cases=len(names), max_abs_diff=worst)))
"""


def venv_python(venv: Path) -> Path:
    """The interpreter of the virtual environment at ``venv``."""
    return venv / "bin" / "python"


def _create(venv: Path) -> None:
    """A pip-less virtual environment on this interpreter that also sees this environment's
    packages."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True
    )
    inner = subprocess.run(
        [venv_python(venv), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # addsitedir, not bare paths: it also runs those folders' own .pth files (ast-jax's editable
    # install among them).
    outer = dict.fromkeys([sysconfig.get_path("purelib"), *site.getsitepackages()])
    lines = [f"import site; site.addsitedir({folder!r})" for folder in outer]
    (Path(inner) / "ast_jax_project.pth").write_text("\n".join(lines) + "\n")


def _install_torchaudio(venv: Path) -> Path:
    """torchaudio without dependencies and without its compiled extension; returns its folder."""
    subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(venv_python(venv)), "install",
            "--no-deps", "--no-cache-dir", f"torchaudio=={TORCHAUDIO_VERSION}",
        ],
        check=True,
    )  # fmt: skip
    package = Path(
        subprocess.run(
            [
                venv_python(venv), "-c",
                "import importlib.util; print(importlib.util.find_spec('torchaudio').origin)",
            ],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    ).parent  # fmt: skip
    for library in (package / "lib").glob("*.so"):
        library.unlink()
    return package


def check(python: Path) -> dict:
    """Runs the stored torchaudio cases through ``python``'s torchaudio; their largest
    difference."""
    done = subprocess.run(
        [python, "-c", _CHECK, str(FIXTURES)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--output", type=Path, help="append the check's JSON line here")
    args = parser.parse_args()
    _create(args.venv)
    print(f"torchaudio in {_install_torchaudio(args.venv)}")
    result = {"benchmark": "torchaudio_setup", **check(venv_python(args.venv))}
    print(json.dumps(result))
    if args.output:
        append_jsonl(args.output, [result])
    if result["max_abs_diff"] > 1e-4:
        sys.exit("torchaudio there does not reproduce the stored torchaudio outputs")
    print(f"ready: {venv_python(args.venv)}")


if __name__ == "__main__":
    main()
