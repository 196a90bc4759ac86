"""The ``ast-jax`` command line, end to end in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import soundfile

from ast_jax import AudioClassifier, FeatureExtractor, export_hf, load_pretrained
from ast_jax.cli.output import output_names
from ast_jax.frontend.audio import load_audio

EXAMPLE = Path(__file__).parents[1] / "examples" / "audio" / "yes.wav"
RATE = 16000


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


# The CLI prints scores rounded to 6 decimals.
PRINTED_ATOL = 1e-6


@pytest.fixture(scope="module")
def audio(tone, tmp_path_factory):
    """A folder with a 1 s clip and a 40 s recording (32 windows: enough for a progress bar)."""
    folder = tmp_path_factory.mktemp("audio")
    soundfile.write(folder / "short.wav", tone(440.0, 1.0), RATE)
    long = np.concatenate([tone(440.0, 20.0), tone(2500.0, 20.0)])
    soundfile.write(folder / "long.flac", long, RATE, subtype="PCM_24")
    return folder


def test_timeline_file_names_are_unique():
    files = [Path("data/a/x.wav"), Path("data/b/x.flac"), Path("data/b/y.wav")]
    assert output_names(files, ".png") == {
        "data/a/x.wav": "a__x.png",
        "data/b/x.flac": "b__x.png",
        "data/b/y.wav": "y.png",
    }
    assert output_names([], ".png") == {}


def test_classify_json_matches_the_api_and_draws_timelines(tiny_checkpoint, audio, tmp_path):
    result = _cli(
        "classify", str(tiny_checkpoint), str(audio), "--format", "json", "--per-window",
        "--top-k", "2", "--timeline", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    files = sorted(audio.iterdir())
    expected = AudioClassifier.from_pretrained(tiny_checkpoint).classify(files)
    assert [entry["file"] for entry in printed] == [str(path) for path in files]
    for entry, clip in zip(printed, expected, strict=True):
        assert entry["duration"] == clip.duration
        assert entry["windows"] == len(clip.window_times)
        assert [top["label"] for top in entry["top"]] == [label for label, _ in clip.top_k(2)]
        np.testing.assert_allclose(
            [top["score"] for top in entry["top"]], [s for _, s in clip.top_k(2)], atol=PRINTED_ATOL
        )
        starts = [window["start"] for window in entry["per_window"]]
        np.testing.assert_allclose(starts, clip.window_times[:, 0], atol=1e-3)
    assert printed[0]["windows"] == 32  # long.flac: 40 s in 1.28 s windows
    assert "33/33" in result.stderr  # tqdm's bar on stderr, counting the windows of both files
    for name in ("long.png", "short.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_classify_csv_and_table(tiny_config, tiny_checkpoint, audio):
    short = str(audio / "short.wav")
    result = _cli(
        "classify", str(tiny_checkpoint), short, "--format", "csv", "--top-k", "3", "--per-window"
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    ranks = [("clip", "1"), ("clip", "2"), ("clip", "3")]
    ranks += [("window", "1"), ("window", "2"), ("window", "3")]
    assert [(row["scope"], row["rank"]) for row in rows] == ranks
    assert {row["label"] for row in rows} <= set(tiny_config.labels)
    table = _cli("classify", str(tiny_checkpoint), short, "--top-k", "1")
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith(f"{short}  (1.00 s, 1 window)")
    assert table.stderr == ""  # one window: no progress bar


def test_classify_reports_every_bad_input_and_goes_on(tiny_checkpoint, audio, tmp_path):
    (tmp_path / "no_audio").mkdir()
    (tmp_path / "no_audio" / "readme.txt").write_text("not audio")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF0000WAVEfmt garbage")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), RATE)
    (tmp_path / "notes.ogg").write_text("text with an audio name")
    bad = ["missing.wav", "no_audio", "corrupt.wav", "empty.wav", "notes.ogg"]
    args = [str(tmp_path / name) for name in bad]
    result = _cli(
        "classify", str(tiny_checkpoint), *args, str(audio / "short.wav"), "--format", "json"
    )
    assert result.returncode == 1
    assert [entry["file"] for entry in json.loads(result.stdout)] == [str(audio / "short.wav")]
    errors = result.stderr.splitlines()
    assert len(errors) == len(bad)
    for fragment in (
        "not found",
        "no audio files in directory",
        "cannot decode",
        "no audio samples",
    ):
        assert any(fragment in line for line in errors), (fragment, errors)
    assert all(line.startswith("error: ") for line in errors)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("classify", "{tmp}/no-model", "{audio}"), "cannot load model"),
        (("classify", "{model}", "{audio}", "--window", "5"), "longer than the model's input"),
        (("classify", "{model}", "{audio}", "--top-k", "0"), "expected an integer >= 1"),
        (("embed", "{model}", "{audio}", "-o", "{tmp}/e.csv"), "-o must end in one of"),
        (("info", "{tmp}"), "cannot load model"),
    ],
)
def test_command_errors_exit_2(tiny_checkpoint, audio, tmp_path, args, message):
    paths = {"model": tiny_checkpoint, "audio": audio / "short.wav", "tmp": tmp_path}
    result = _cli(*(arg.format(**paths) for arg in args))
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_embed_writes_embeddings_with_the_file_list(tiny_config, tiny_checkpoint, audio, tmp_path):
    out = tmp_path / "embeddings.npz"
    result = _cli("embed", str(tiny_checkpoint), str(audio), "-o", str(out), "--tokens", "-q")
    assert result.returncode == 0, result.stderr
    expected = AudioClassifier.from_pretrained(tiny_checkpoint).embed(
        sorted(audio.iterdir()), tokens=True
    )
    with np.load(out) as archive:
        assert list(archive["files"]) == [embedding.source for embedding in expected]
        np.testing.assert_allclose(
            archive["pooled"], np.stack([e.pooled for e in expected]), atol=PRINTED_ATOL
        )
        assert archive["last_hidden_state/0"].shape == (
            32,
            tiny_config.seq_len,
            tiny_config.hidden_size,
        )
    assert result.stderr == ""  # -q: no progress bar


def test_convert_then_info(tiny_config, tiny_extractor, tiny_params, tiny_checkpoint, tmp_path):
    hf = export_hf(tmp_path / "hf", tiny_config, tiny_params())
    tiny_extractor.save_pretrained(hf)
    result = _cli("convert", str(hf), str(tmp_path / "converted"))
    assert result.returncode == 0, result.stderr
    config, params = load_pretrained(tmp_path / "converted")
    _, expected = load_pretrained(tiny_checkpoint)
    assert config == tiny_config
    np.testing.assert_array_equal(
        params["classifier"]["dense"]["kernel"], expected["classifier"]["dense"]["kernel"]
    )
    assert FeatureExtractor.from_pretrained(tmp_path / "converted") == tiny_extractor
    info = _cli("info", str(tmp_path / "converted"), "--json")
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    assert described["labels"] == list(tiny_config.labels)
    assert described["activation"] == "softmax"
    assert described["window_seconds"] == 1.28
    assert described["parameters"] == sum(np.size(x) for x in jax.tree.leaves(expected))
    missing = _cli("convert", str(tmp_path / "nothing-here"), str(tmp_path / "out"))
    assert missing.returncode == 2  # a model that cannot be read: the command cannot run
    assert "cannot read" in missing.stderr


BUNDLED_EXAMPLES = sorted((EXAMPLE.parent).glob("kws_*.wav"))


def test_classify_defaults_to_the_bundled_model():
    result = _cli("classify", *map(str, BUNDLED_EXAMPLES), "--top-k", "1", "--format", "json")
    assert result.returncode == 0, result.stderr
    top = [entry["top"][0]["label"] for entry in json.loads(result.stdout)]
    assert top == [path.stem.removeprefix("kws_") for path in BUNDLED_EXAMPLES]
    named = _cli(
        "classify", "kws12", *map(str, BUNDLED_EXAMPLES), "--top-k", "1", "--format", "json"
    )
    assert named.stdout == result.stdout


def test_compiled_programs_are_cached_between_runs_unless_turned_off(tmp_path):
    """A second run loads the bundled model's program from the cache: same output, and the cache
    directory holds it; ``--no-compilation-cache`` writes nothing."""
    cache = tmp_path / "cache"
    arguments = ["classify", str(BUNDLED_EXAMPLES[0]), "--format", "json"]
    environment = {**os.environ, "AST_JAX_COMPILATION_CACHE": str(cache)}
    command = [sys.executable, "-m", "ast_jax.cli", *arguments]
    runs = [subprocess.run(command, capture_output=True, text=True, env=environment) for _ in "ab"]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert any(cache.iterdir())
    off = tmp_path / "off"
    environment["AST_JAX_COMPILATION_CACHE"] = str(off)
    command.insert(3, "--no-compilation-cache")
    assert subprocess.run(command, capture_output=True, env=environment).returncode == 0
    assert not off.exists()


def test_a_leading_model_is_told_apart_from_inputs(tiny_checkpoint, audio):
    # A directory holding config.json is a model; audio directories and missing .wav are inputs.
    with_model = _cli(
        "classify", str(tiny_checkpoint), str(audio / "short.wav"), "--format", "json"
    )
    assert with_model.returncode == 0, with_model.stderr
    assert len(json.loads(with_model.stdout)) == 1
    missing = _cli("classify", "missing.wav", str(audio / "short.wav"), "--format", "json")
    assert missing.returncode == 1 and "missing.wav" in missing.stderr
    assert _cli("classify", "kws12").returncode == 2
