"""Batch inference in parts (`ast_jax.inference.parts`, ``--parts``, ``ast-jax merge``): a CSV
manifest as input, ``embed`` over 2 processes merged into exactly the 1-process file, a restarted
``classify`` that runs only the missing part, refused settings, and a merge that refuses missing
parts. Failed inputs keep their exit code 1 through the parts and the merge."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ast_jax.cli.main import main
from ast_jax.inference.parts import assigned_parts, read_manifest

RATE = 16000
PART_SIZE = 2
# The manifest's rows: 7 inputs, so parts of 2 are [a, b], [bad, missing] (every input fails: an
# embed part without arrays), [d, e], [c] (a short last part).
ROWS = ["audio/a.wav", "audio/b.wav", "audio/bad.wav", "audio/missing.wav", "audio/d.wav"]
ROWS += ["audio/e.wav", "audio/c.flac"]
NUM_PARTS = 4


@pytest.fixture(scope="module")
def manifest(tone, tmp_path_factory) -> Path:
    """A CSV manifest (header, labels in a second column as in a training manifest, a blank row)
    of 5 tones of 1 to 3 windows, a corrupt file and a missing one."""
    root = tmp_path_factory.mktemp("batch")
    audio = root / "audio"
    audio.mkdir()
    for name, frequency, seconds in (
        ("a.wav", 300.0, 0.5),
        ("b.wav", 700.0, 1.6),  # 2 windows of 1.28 s
        ("d.wav", 1500.0, 2.9),  # 3 windows
        ("e.wav", 2500.0, 1.0),
    ):
        soundfile.write(audio / name, tone(frequency, seconds), RATE)
    soundfile.write(audio / "c.flac", tone(900.0, 0.8), RATE, subtype="PCM_24")
    (audio / "bad.wav").write_bytes(b"RIFF0000WAVEfmt garbage")
    lines = ["path,label"] + [f"{row},x" for row in ROWS[:3]] + [""] + ROWS[3:]
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    return root / "list.csv"


def _run(capsys, *args) -> tuple[int, str, str]:
    """Runs ``ast-jax ARGS`` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


# ---- the library -------------------------------------------------------------------------------


def test_a_manifest_lists_its_first_column_relative_to_itself(tmp_path):
    manifest = tmp_path / "sub" / "list.csv"
    manifest.parent.mkdir()
    manifest.write_text("path,labels\nx.wav,a;b\n\n  y/z.flac  \n/abs/w.wav,c\n")
    assert read_manifest(manifest) == [
        manifest.parent / "x.wav",
        manifest.parent / "y/z.flac",
        Path("/abs/w.wav"),
    ]
    (tmp_path / "empty.csv").write_text("path\n\n")
    with pytest.raises(ValueError, match="lists no inputs"):
        read_manifest(tmp_path / "empty.csv")


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_processes_share_the_parts_without_overlap(count):
    for num_parts in range(10):
        shares = [assigned_parts(num_parts, i, count) for i in range(count)]
        assert sorted(part for share in shares for part in share) == list(range(num_parts))
        assert all(part % count == i for i, share in enumerate(shares) for part in share)
    with pytest.raises(ValueError, match="not in"):
        assigned_parts(3, count, count)


# ---- embed over two processes ------------------------------------------------------------------


def test_embed_over_two_processes_merges_to_the_one_process_file(
    tiny_checkpoint, manifest, tmp_path
):
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    command = [sys.executable, "-m", "ast_jax.cli", "embed", str(tiny_checkpoint), str(manifest)]
    command += ["--tokens", "-q", "--batch-size", "4"]
    one = subprocess.run(
        [*command, "-o", str(tmp_path / "one.npz")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 1, one.stderr  # the corrupt and the missing file
    parts = tmp_path / "parts"
    flags = ["--parts", str(parts), "--part-size", str(PART_SIZE), "-o", str(tmp_path / "m.npz")]
    flags += ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    running = [
        subprocess.Popen(
            [*command, *flags, "--process-id", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in running]
    # Process 0 runs parts 0 and 2 (no failures), process 1 parts 1 and 3 (both failures).
    assert [process.returncode for process in running] == [0, 1], outputs
    assert "process 0 of 2 wrote 2 parts, skipped 0" in outputs[0][0]
    assert "process 1 of 2 wrote 2 parts, skipped 0" in outputs[1][0]
    assert _errors(outputs[1][1]) == _errors(one.stderr)
    names = sorted(path.name for path in parts.iterdir())
    assert names == [
        "part-00000.json", "part-00000.npz", "part-00001.json",  # part 1: no arrays, all failed
        "part-00002.json", "part-00002.npz", "part-00003.json", "part-00003.npz", "run.json",
    ]  # fmt: skip

    # The merge writes the run's -o by default; its errors and exit code are the 1-process run's.
    result = subprocess.run(
        [sys.executable, "-m", "ast_jax.cli", "merge", str(parts)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert _errors(result.stderr) == _errors(one.stderr)
    assert result.stdout == f"5 embeddings -> {tmp_path / 'm.npz'}\n"
    with np.load(tmp_path / "one.npz") as expected, np.load(tmp_path / "m.npz") as merged:
        assert sorted(merged.files) == sorted(expected.files)
        good = [row for row in ROWS if row not in ("audio/bad.wav", "audio/missing.wav")]
        assert list(merged["files"]) == [str(manifest.parent / row) for row in good]
        for name in expected.files:  # bit-identical: the same bits in any batch, in any process
            assert merged[name].dtype == expected[name].dtype, name
            np.testing.assert_array_equal(merged[name], expected[name], err_msg=name)
        assert merged["window_pooled/2"].shape[0] == 3  # d.wav: 3 windows, split over batches


# ---- classify: restart, settings, merge ----------------------------------------------------------


def _classify(checkpoint, *inputs_then_flags):
    return ["classify", checkpoint, *inputs_then_flags, "--format", "json", "--top-k", "3"]


def test_a_restarted_classify_runs_only_the_missing_part(
    tiny_checkpoint, manifest, tmp_path, capsys
):
    empty = tmp_path / "empty"  # an argument that names no audio: exit code 1, kept in run.json
    empty.mkdir()
    args = _classify(tiny_checkpoint, manifest, empty, "--per-window")
    one = _run(capsys, *args)
    assert one[0] == 1
    parts = tmp_path / "parts"
    flags = ["--parts", parts, "--part-size", PART_SIZE]
    first = _run(capsys, *args, *flags)
    assert first[0] == 1
    assert first[1] == f"{parts}: process 0 of 1 wrote {NUM_PARTS} parts, skipped 0 already " + (
        f"written ({NUM_PARTS} parts in all; ast-jax merge {parts} joins them)\n"
    )
    assert _errors(first[2]) == _errors(one[2])
    written = sorted(parts.glob("part-*.json"))
    assert len(written) == NUM_PARTS
    for path in written:  # an old mtime: a part written again would get a new one
        os.utime(path, ns=(10**9, 10**9))
    redo = parts / "part-00002.json"  # d.wav and e.wav, no failures
    expected_part = redo.read_text()
    redo.unlink()

    again = _run(capsys, *args, *flags)
    assert again[0] == 1  # the argument naming no audio; the failed inputs' parts are skipped
    assert "wrote 1 parts, skipped 3 already written" in again[1]
    assert _errors(again[2]) == [line for line in _errors(one[2]) if "no audio files" in line]
    assert redo.read_text() == expected_part
    for path in written:
        assert (path.stat().st_mtime_ns == 10**9) == (path != redo), path.name

    merged = _run(capsys, "merge", parts)
    assert merged == one  # the same JSON, errors and exit code as the single run


@pytest.fixture(scope="module")
def classified(tiny_checkpoint, manifest, tmp_path_factory) -> Path:
    """A finished classify run in parts of 3 (never changed by the tests that use it)."""
    parts = tmp_path_factory.mktemp("classified") / "parts"
    args = _classify(tiny_checkpoint, manifest, "--parts", parts, "--part-size", "3")
    assert main([str(arg) for arg in args]) == 1
    return parts


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["--part-size", "2"], "part_size: 2 here, 3 there"),
        (["--top-k", "2"], "options"),
        (["--hop", "0.5"], "options"),
        (["--other-model"], "model_sha256"),
        (["--fewer-inputs"], "inputs"),
        (["--embed"], "command"),
    ],
)
def test_a_run_with_other_settings_is_refused(
    classified,
    tiny_checkpoint,
    save_tiny_checkpoint,
    tiny_params,
    manifest,
    tmp_path,
    capsys,
    change,
    named,
):
    before = {path.name: path.read_bytes() for path in classified.iterdir()}
    checkpoint, inputs = tiny_checkpoint, [manifest]
    args = _classify(checkpoint, manifest, "--parts", classified, "--part-size", "3")
    if change == ["--other-model"]:
        other = save_tiny_checkpoint(tmp_path / "other", tiny_params(seed=1))
        args = _classify(other, manifest, "--parts", classified, "--part-size", "3")
    elif change == ["--fewer-inputs"]:
        fewer = tmp_path / "fewer.csv"
        fewer.write_text("\n".join(str(manifest.parent / row) for row in ROWS[:-1]) + "\n")
        args = _classify(checkpoint, fewer, "--parts", classified, "--part-size", "3")
    elif change == ["--embed"]:
        args = ["embed", checkpoint, *inputs, "-o", tmp_path / "e.npz", "--parts", classified]
        args += ["--part-size", "3"]
    else:
        args += change
    code, out, err = _run(capsys, *args)
    assert code == 2
    assert "holds parts of a run with other settings" in err and named in err, err
    assert out == ""
    assert {path.name: path.read_bytes() for path in classified.iterdir()} == before


def test_merge_refuses_missing_parts(classified, tmp_path, capsys):
    parts = shutil.copytree(classified, tmp_path / "parts")
    assert _run(capsys, "merge", parts)[0] == 1  # whole: merges, with the failed inputs
    (parts / "part-00000.json").unlink()
    (parts / "part-00002.json").unlink()
    code, out, err = _run(capsys, "merge", parts, "-o", tmp_path / "out.json")
    assert code == 2
    assert "2 of 3 parts missing: part-00000.json, part-00002.json" in err
    assert out == "" and not (tmp_path / "out.json").exists()
    (parts / "run.json").unlink()
    code, _, err = _run(capsys, "merge", parts)
    assert code == 2 and "holds no parts run" in err


def test_merge_writes_the_chosen_format(classified, tiny_checkpoint, manifest, tmp_path, capsys):
    single = _run(capsys, "classify", tiny_checkpoint, manifest, "--top-k", "3", "--format", "csv")
    code, out, _ = _run(capsys, "merge", classified, "--format", "csv", "-o", tmp_path / "r.csv")
    assert code == single[0] == 1
    assert out == f"5 results -> {tmp_path / 'r.csv'}\n"
    assert (tmp_path / "r.csv").read_text() == single[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("classify", "{model}", "{audio}", "--num-processes", "2", "--process-id", "0",
             "--coordinator", "127.0.0.1:1"),
            "give --parts DIR",
        ),
        (("embed", "{model}", "{audio}", "-o", "{tmp}/e.npy", "--tokens", "--parts", "{tmp}/p"),
         "need -o .npz or .safetensors"),
        (("merge", "{tmp}/nothing"), "holds no parts run"),
    ],
)  # fmt: skip
def test_parts_command_errors_exit_2(tiny_checkpoint, manifest, tmp_path, capsys, args, message):
    paths = {"model": tiny_checkpoint, "audio": manifest, "tmp": tmp_path}
    code, out, err = _run(capsys, *(arg.format(**paths) for arg in args))
    assert code == 2
    assert message in err
    assert out == ""


def test_a_missing_manifest_is_a_failed_input(tiny_checkpoint, tmp_path, capsys):
    missing = tmp_path / "missing.csv"  # not taken for a model: a .csv names inputs
    code, out, err = _run(capsys, "classify", tiny_checkpoint, missing, "--format", "json")
    assert (code, out.strip(), _errors(err)) == (1, "[]", [f"error: {missing}: not found"])
