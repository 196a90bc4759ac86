"""The bad-input table: each class of bad input, and what the command line does with it.

Every row is one input (an audio file given to ``classify``, or a checkpoint given as MODEL) and
its expected outcome: a correct result (exit 0), or one line ``error: ...`` on stderr that names
the file and says what is wrong, with exit code 1 for a bad input among others and 2 for a run
that cannot start. No row may print a traceback. docs/reliability.md lists the same table.
"""

from __future__ import annotations

import collections
import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ast_jax.checkpoints.pretrained import export_hf, save_pretrained
from ast_jax.cli.main import main

RATE = 16000


@dataclass(frozen=True)
class Row:
    """One bad input: ``make(directory, tone)`` writes it and returns its path."""

    name: str
    make: Callable[[Path, Callable], Path]
    exit_code: int
    message: str | None  # a regex the one-line error matches; None: a correct result


def _wav(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    soundfile.write(path, samples, rate, subtype=subtype)
    return path


def _float_wav(path: Path, samples: np.ndarray) -> Path:
    return _wav(path, samples.astype(np.float32), subtype="FLOAT")


def _truncated(path: Path, tone: Callable) -> Path:
    data = _wav(path, tone(440.0, 1.0)).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


AUDIO_ROWS = [
    Row("empty file", lambda d, t: _bytes(d / "empty.wav", b""), 1, "cannot decode .*empty.wav"),
    Row(
        "not audio", lambda d, t: _bytes(d / "text.wav", b"hello " * 100), 1,
        "cannot decode .*text.wav",
    ),
    Row("truncated WAV", lambda d, t: _truncated(d / "cut.wav", t), 1, "cut.wav is truncated"),
    Row(
        "NaN samples", lambda d, t: _float_wav(d / "nan.wav", np.full(RATE, np.nan)), 1,
        "nan.wav: .*NaN or infinite",
    ),
    Row(
        "infinite samples",
        lambda d, t: _float_wav(d / "inf.wav", np.r_[t(440.0, 1.0), np.inf]), 1,
        "inf.wav: .*NaN or infinite",
    ),
    Row(
        "int16-scale floats", lambda d, t: _float_wav(d / "loud.wav", 30000 * t(440.0, 1.0)), 1,
        r"loud.wav: peak 15000 is far outside \[-1, 1\].*divide by 32768",
    ),
    Row(
        "shorter than one frame", lambda d, t: _wav(d / "short.wav", t(440.0, 0.01)), 1,
        "short.wav: 160 samples is shorter than one 25 ms frame",
    ),
    Row("missing file", lambda d, t: d / "missing.wav", 1, "not found: .*missing.wav"),
    Row(
        "folder without audio", lambda d, t: _mkdir(d / "folder" / "sub"), 1,
        "no audio files in directory .*sub",
    ),
    Row("8 kHz", lambda d, t: _wav(d / "8k.wav", t(440.0, 1.0, rate=8000), 8000), 0, None),
    Row("stereo", lambda d, t: _wav(d / "stereo.wav", np.stack([t(440.0, 1.0)] * 2, 1)), 0, None),
    Row("24-bit", lambda d, t: _wav(d / "24.wav", t(440.0, 1.0), subtype="PCM_24"), 0, None),
    Row("8-bit", lambda d, t: _wav(d / "8bit.wav", t(440.0, 1.0), subtype="PCM_U8"), 0, None),
    Row("FLAC", lambda d, t: _wav(d / "x.flac", t(440.0, 1.0)), 0, None),
    Row("10 minutes", lambda d, t: _wav(d / "long.wav", t(440.0, 600.0, amplitude=0.1)), 0, None),
]  # fmt: skip


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _one_error_line(stderr: str, pattern: str) -> None:
    """stderr is exactly one ``error:`` line matching ``pattern``."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert re.search(pattern, lines[0]), (pattern, lines[0])


@pytest.mark.parametrize("row", AUDIO_ROWS, ids=[row.name for row in AUDIO_ROWS])
def test_bad_audio(row, tiny_checkpoint, tone, tmp_path, capsys):
    path = row.make(tmp_path, tone)
    code = main(["classify", str(tiny_checkpoint), str(path), "--format", "json", "-q"])
    out, err = capsys.readouterr()
    assert code == row.exit_code, err
    if row.message is None:
        assert err == ""
        [result] = json.loads(out)
        assert result["top"] and all(np.isfinite(entry["score"]) for entry in result["top"])
    else:
        _one_error_line(err, row.message)
        assert json.loads(out) == []


def test_a_bad_input_among_good_ones_fails_alone(tiny_checkpoint, tone, tmp_path, capsys):
    good = _wav(tmp_path / "good.wav", tone(440.0, 1.0))
    bad = _truncated(tmp_path / "bad.wav", tone)
    code = main(["classify", str(tiny_checkpoint), str(bad), str(good), "--format", "json", "-q"])
    out, err = capsys.readouterr()
    assert code == 1
    _one_error_line(err, "bad.wav is truncated")
    assert [result["file"] for result in json.loads(out)] == [str(good)]


# ---- checkpoints given as MODEL: the run cannot start, exit 2 -------------------------------


class _Exploit:
    """Pickles as a call to `os.system`; unpickling it naively would run the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _checkpoint(directory: Path, config, params, extractor) -> Path:
    return save_pretrained(directory, config, params, feature_extractor=extractor)


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _corrupt_weights(directory: Path, damage: Callable[[bytes], bytes]) -> Path:
    weights = directory / "ast_jax.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    return directory


def _nan_weights(directory: Path) -> Path:
    """A NaN in the first float of the first tensor, written into the safetensors bytes."""
    weights = directory / "ast_jax.safetensors"
    data = bytearray(weights.read_bytes())
    header = 8 + struct.unpack("<Q", bytes(data[:8]))[0]
    data[header : header + 4] = struct.pack("<f", float("nan"))
    weights.write_bytes(bytes(data))
    return directory


def _malicious(directory: Path, config, params) -> Path:
    import torch

    export_hf(directory, config, params)
    (directory / "model.safetensors").unlink()
    payload = collections.OrderedDict(weight=torch.zeros(2), evil=_Exploit(directory / "pwned"))
    torch.save(payload, directory / "pytorch_model.bin")
    return directory


def _without_config(directory: Path) -> Path:
    (directory / "config.json").unlink()
    return directory


def _mismatched(directory: Path) -> Path:
    _edit_json(directory / "config.json", intermediate_size=48)
    return directory


CHECKPOINT_ROWS = {
    "truncated weights": (
        lambda d: _corrupt_weights(d, lambda b: b[: len(b) // 2]),
        "corrupt or truncated",
    ),
    "garbage weights": (
        lambda d: _corrupt_weights(d, lambda b: b"\x10\x00" + b"x" * 64),
        "corrupt or truncated",
    ),
    "NaN weights": (_nan_weights, "NaN or infinity"),
    "shapes that do not match the config": (_mismatched, "shapes did not match"),
    "no config.json (half-written)": (_without_config, "no config.json in .*: not a complete"),
    "config.json not JSON": (
        lambda d: _bytes(d / "config.json", b"{oops") and d,
        "config.json is not valid JSON",
    ),
    "invalid config value": (
        lambda d: _edit_json(d / "config.json", hidden_size="wide") or d,
        "config.json: hidden_size must be an int",
    ),
    "NaN mean in preprocessor_config.json": (
        lambda d: _edit_json(d / "preprocessor_config.json", mean=float("nan")) or d,
        "preprocessor_config.json: mean=nan is invalid",
    ),
    "sampling_rate as a string": (
        lambda d: _edit_json(d / "preprocessor_config.json", sampling_rate="16000") or d,
        "preprocessor_config.json: sampling_rate='16000' is invalid",
    ),
}


# Every row through classify; two of them through every command that loads a model.
_CHECKPOINT_CASES = [(row, "classify") for row in CHECKPOINT_ROWS] + [
    (row, command)
    for row in ("NaN weights", "no config.json (half-written)")
    for command in ("embed", "info", "evaluate", "export")
]


@pytest.mark.parametrize(
    ("row", "command"), _CHECKPOINT_CASES, ids=[f"{r}-{c}" for r, c in _CHECKPOINT_CASES]
)
def test_bad_checkpoint(
    row, command, tiny_config, tiny_params, tiny_extractor, tone, tmp_path, capsys
):
    make, pattern = CHECKPOINT_ROWS[row]
    model = make(_checkpoint(tmp_path / "model", tiny_config, tiny_params(), tiny_extractor))
    clip = _wav(tmp_path / "clip.wav", tone(440.0, 1.0))
    data = _mkdir(tmp_path / "data" / tiny_config.labels[0])
    _wav(data / "a.wav", tone(440.0, 1.0))
    arguments = {
        "classify": [str(clip)], "embed": [str(clip), "-o", str(tmp_path / "e.npz")], "info": [],
        "evaluate": [str(data.parent)], "export": ["-o", str(tmp_path / "artifact")],
    }[command]  # fmt: skip
    assert main([command, str(model), *arguments]) == 2
    _one_error_line(capsys.readouterr().err, pattern)


@pytest.mark.parametrize("command", ["classify", "info", "embed", "evaluate", "convert"])
def test_malicious_pickle_never_runs_and_cannot_start(
    command, tiny_config, tiny_params, tone, tmp_path, capsys
):
    model = _malicious(tmp_path / "model", tiny_config, tiny_params())
    clip = _wav(tmp_path / "clip.wav", tone(440.0, 1.0))
    arguments = {
        "classify": [str(clip)], "info": [], "embed": [str(clip), "-o", str(tmp_path / "e.npz")],
        "evaluate": [str(tmp_path)], "convert": ["-o", str(tmp_path / "converted")],
    }[command]  # fmt: skip
    assert main([command, str(model), *arguments]) == 2
    _one_error_line(capsys.readouterr().err, "refused|not allowed|system")
    assert not (model / "pwned").exists()


def test_convert_onto_a_file_cannot_start(tiny_checkpoint, tmp_path, capsys):
    target = _bytes(tmp_path / "taken", b"not a directory")
    assert main(["convert", str(tiny_checkpoint), "-o", str(target)]) == 2
    _one_error_line(capsys.readouterr().err, "taken is a file")
    assert target.read_bytes() == b"not a directory"


def test_convert_never_deletes_a_folder_of_other_files(tiny_checkpoint, tmp_path, capsys):
    target = _mkdir(tmp_path / "photos")
    _bytes(target / "holiday.jpg", b"\xff\xd8")
    assert main(["convert", str(tiny_checkpoint), "-o", str(target)]) == 2
    _one_error_line(capsys.readouterr().err, "photos holds files that are not part of")
    assert (target / "holiday.jpg").read_bytes() == b"\xff\xd8"


def test_non_finite_model_outputs_fail_the_input_not_the_json(
    tiny_config, tiny_params, tiny_extractor, tone, tmp_path, capsys
):
    """Finite weights can still overflow (here to inf): the input fails, JSON never says NaN."""
    params = tiny_params()
    params["classifier"]["dense"]["kernel"] = np.full_like(
        params["classifier"]["dense"]["kernel"], 3e38
    )
    model = _checkpoint(tmp_path / "model", tiny_config, params, tiny_extractor)
    clip = _wav(tmp_path / "clip.wav", tone(440.0, 1.0))
    assert main(["classify", str(model), str(clip), "--format", "json", "-q"]) == 1
    out, err = capsys.readouterr()
    _one_error_line(err, "clip.wav: the model computed NaN or infinite outputs")
    assert json.loads(out) == []


def test_debug_shows_the_traceback(tiny_config, tiny_params, tiny_extractor, tmp_path, capsys):
    model = _without_config(
        _checkpoint(tmp_path / "model", tiny_config, tiny_params(), tiny_extractor)
    )
    assert main(["--debug", "info", str(model)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")
