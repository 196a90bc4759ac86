"""The ``ast-jax`` command line, end to end in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from ast_jax import FeatureExtractor
from ast_jax.audio import load_audio

EXAMPLE = Path(__file__).parents[1] / "examples" / "audio" / "yes.wav"


def _cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ast_jax.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_features_writes_npy_and_png(tmp_path):
    result = _cli(
        "features", str(EXAMPLE), "-o", str(tmp_path), "--png", "--preset", "speech_commands"
    )
    assert result.returncode == 0, result.stderr
    values = np.load(tmp_path / "yes.npy")
    expected = FeatureExtractor.from_preset("speech_commands")(
        load_audio(EXAMPLE), sampling_rate=16000
    )
    np.testing.assert_array_equal(values, expected["input_values"][0])
    assert (tmp_path / "yes.png").read_bytes().startswith(b"\x89PNG")


def test_features_reports_bad_files_and_continues(tmp_path):
    result = _cli("features", str(tmp_path / "missing.wav"), str(EXAMPLE), "-o", str(tmp_path))
    assert result.returncode == 1
    assert "missing.wav" in result.stderr and "not found" in result.stderr
    assert (tmp_path / "yes.npy").exists()


def test_usage_errors_exit_2():
    assert _cli("features").returncode == 2
    assert _cli("no-such-command").returncode == 2
