"""One command-line vocabulary: MODEL first, ``-o/--output``, ``--format``, shared exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ast_jax.checkpoints.bundled import bundled_model_path
from ast_jax.cli.common import EXIT_CANNOT_RUN, EXIT_INPUT_FAILED, EXIT_OK
from ast_jax.cli.main import build_parser, main

EXAMPLES = Path(__file__).parents[1] / "examples" / "audio"


def _subcommands() -> dict:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    return commands.choices


def test_every_output_flag_is_dash_o():
    for name, parser in _subcommands().items():
        for action in parser._actions:
            if action.dest == "output" and action.help != "==SUPPRESS==":
                assert action.option_strings[:2] == ["-o", "--output"], name


def test_every_model_argument_is_called_model():
    for name, parser in _subcommands().items():
        metavars = {a.metavar for a in parser._actions if a.dest in ("model", "arguments")}
        if name in ("features", "merge"):  # merge reads a parts directory, no model
            continue
        assert "MODEL" in metavars or any("MODEL" in (a.help or "") for a in parser._actions), name


@pytest.fixture
def fake_finetune(monkeypatch):
    seen = {}

    def finetune(data, model, out, train_config, **kwargs):
        seen.update(data=data, model=model, out=out)
        raise ValueError("stop here")

    monkeypatch.setattr("ast_jax.training.finetune.finetune", finetune)
    return seen


def test_finetune_takes_model_first_and_dash_o(tmp_path, fake_finetune):
    config = tmp_path / "config.json"
    assert main(["finetune", str(config), str(tmp_path / "data"), "-o", str(tmp_path / "run")]) == 2
    assert fake_finetune == {
        "data": tmp_path / "data",
        "model": str(config),
        "out": tmp_path / "run",
    }


def test_finetune_older_spellings_still_work(tmp_path, fake_finetune):
    args = ["finetune", str(tmp_path / "data"), "--model", "kws12", "--out", str(tmp_path / "r")]
    assert main(args) == EXIT_CANNOT_RUN  # the fake stops the run
    assert fake_finetune["model"] == bundled_model_path()  # a bundled name resolves
    assert fake_finetune["out"] == tmp_path / "r"


def test_finetune_without_output_or_with_two_models_cannot_run(tmp_path, capsys):
    assert main(["finetune", "kws12", str(tmp_path)]) == EXIT_CANNOT_RUN
    assert "-o OUTPUT" in capsys.readouterr().err
    args = ["finetune", "kws12", str(tmp_path), "--model", "kws12", "-o", str(tmp_path)]
    assert main(args) == EXIT_CANNOT_RUN
    assert "give MODEL once" in capsys.readouterr().err


def test_info_format_json_and_its_older_spelling(capsys):
    assert main(["info", "kws12", "--format", "json"]) == EXIT_OK
    described = json.loads(capsys.readouterr().out)
    assert main(["info", "kws12", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == described
    assert described["attention"] in ("xla", "per_head")  # resolved, never "auto"
    assert main(["info", "kws12"]) == EXIT_OK
    table = capsys.readouterr().out
    for index, label in enumerate(described["labels"]):  # every label, none cut off
        assert f"\n  {index}: {label}\n" in table


def test_convert_takes_dash_o_and_refuses_two_outputs(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", "kws12", "-o", str(out)]) == EXIT_CANNOT_RUN  # not a directory path
    capsys.readouterr()
    assert main(["convert", str(bundled_model_path()), "-o", str(out)]) == EXIT_OK
    assert (out / "config.json").is_file() and (out / "ast_jax.safetensors").is_file()
    assert main(["convert", str(bundled_model_path()), str(out), "-o", str(out)]) == 2
    assert "give the output directory once" in capsys.readouterr().err


def test_convert_onto_a_file_cannot_run(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("not a directory")
    assert main(["convert", str(bundled_model_path()), "-o", str(target)]) == EXIT_CANNOT_RUN
    assert "cannot write" in capsys.readouterr().err


def test_features_of_same_named_files_do_not_overwrite_each_other(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    shutil.copy(EXAMPLES / "kws_yes.wav", tmp_path / "a" / "x.wav")
    shutil.copy(EXAMPLES / "kws_go.wav", tmp_path / "b" / "x.wav")
    out = tmp_path / "out"
    files = [str(tmp_path / "a" / "x.wav"), str(tmp_path / "b" / "x.wav")]
    assert main(["features", *files, "-o", str(out), "--preset", "speech_commands"]) == EXIT_OK
    first, second = np.load(out / "a__x.npy"), np.load(out / "b__x.npy")
    assert not np.array_equal(first, second)


def test_features_report_a_failed_input_with_exit_1(tmp_path):
    args = ["features", str(EXAMPLES / "kws_yes.wav"), str(tmp_path / "missing.wav")]
    assert main([*args, "-o", str(tmp_path / "out")]) == EXIT_INPUT_FAILED
    assert (tmp_path / "out" / "kws_yes.npy").is_file()
