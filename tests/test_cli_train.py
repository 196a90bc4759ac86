"""``ast-jax finetune`` and ``ast-jax evaluate`` end to end on a tiny wav dataset."""

import json

import numpy as np
import pytest
import soundfile

from ast_jax.checkpoints.pretrained import export_hf, load_feature_extractor, load_pretrained
from ast_jax.cli.main import main
from ast_jax.training.state import StateCheckpoints

RATE = 16000


@pytest.fixture(scope="module")
def dataset(tone, trainable_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    for label, frequency in (("low", 400.0), ("high", 3000.0)):
        (root / label).mkdir()
        for i in range(8):
            clip = tone(frequency * (1 + 0.05 * i), 0.35, RATE, amplitude=0.3)
            soundfile.write(
                root / label / f"{i}.wav", clip + 0.01 * rng.normal(size=clip.size), RATE
            )
    config = root / "config.json"
    config.write_text(json.dumps(trainable_config.to_hf_dict()))
    return root, config


def _finetune_args(root, config, out, epochs):
    return [
        "finetune", str(root), "--model", str(config), "--out", str(out), "--epochs", str(epochs),
        "--batch-size", "4", "--val-fraction", "0.25", "--warmup-steps", "0",
        "--weight-average", "1", "2", "-q",
    ]  # fmt: skip


def test_finetune_then_evaluate(trainable_config, dataset, tmp_path, capsys):
    root, config_json = dataset
    out = tmp_path / "run"
    assert main(_finetune_args(root, config_json, out, epochs=2)) == 0
    for name in ("history.json", "history.csv", "curves.png"):
        assert (out / name).is_file()
    assert StateCheckpoints(out / "state").latest() == 2 * 3  # 2 epochs of 3 batches of 4
    config, params = load_pretrained(out / "model")
    assert config.labels == ("high", "low")
    assert config.problem_type == "single_label_classification"
    extractor = load_feature_extractor(out / "model")
    assert extractor.max_length == trainable_config.max_length
    assert export_hf(tmp_path / "hf", config, params).joinpath("model.safetensors").is_file()
    load_pretrained(out / "model_wa")
    capsys.readouterr()

    assert main(["evaluate", str(out / "model"), str(root), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["examples"] == 16
    assert set(results) >= {"accuracy", "mAP", "mAUC", "d_prime"}

    # Resuming a finished run with more epochs trains only the new ones.
    assert main([*_finetune_args(root, config_json, out, epochs=3), "--resume"]) == 0
    assert len(json.loads((out / "history.json").read_text())) == 3


def test_errors_exit_2(dataset, tmp_path, capsys):
    root, config = dataset
    assert main(["finetune", str(tmp_path), "--model", str(config), "--out", str(tmp_path)]) == 2
    assert "class folders" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing"), str(root)]) == 2


def test_training_options_reach_the_train_config(dataset, tmp_path, monkeypatch):
    root, config = dataset
    seen = {}

    def fake_finetune(data, model, out, train_config, **kwargs):
        seen["config"] = train_config
        raise ValueError("stop here")

    monkeypatch.setattr("ast_jax.training.finetune.finetune", fake_finetune)
    args = ["finetune", str(root), "--model", str(config), "--out", str(tmp_path), "-q"]
    assert main([*args, "--freq-warp", "0.15", "--time-shift", "7"]) == 2
    assert (seen["config"].freq_warp, seen["config"].time_shift) == (0.15, 7)
    assert main(args) == 2
    assert seen["config"].freq_warp == 0.0  # off unless asked for
