"""Every file ast-jax writes, read by transformers' Auto classes; every file transformers writes,
read by ast-jax.

Files: `config.json` (`ASTConfig.save_pretrained` / `to_json_file`), `preprocessor_config.json`
(`FeatureExtractor.save_pretrained` / `to_json_file`), a whole ast-jax checkpoint directory
(`ast_jax.save_pretrained`, whose `ast_jax.safetensors` is ast-jax's own format: transformers reads
its config and extractor, and `export_hf` writes the weights transformers reads), and
`export_hf`'s `model.safetensors`. The other way: transformers' `save_pretrained` and
`to_json_file` of configs, extractors and models (safetensors and `pytorch_model.bin`). Also: the
`output_attentions` / `output_hidden_states` defaults a `config.json` stores are honoured on both
sides.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
import torch
import transformers

from ast_jax import (
    ASTConfig,
    ASTForAudioClassification,
    FeatureExtractor,
    export_hf,
    load_feature_extractor,
    load_pretrained,
    save_pretrained,
)

CONFIG = ASTConfig(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_length=100,
    num_mel_bins=48,
    frequency_stride=12,
    time_stride=7,
    labels=("dog", "cat", "bird"),
    problem_type="multi_label_classification",
    output_hidden_states=True,
)
EXTRACTOR = FeatureExtractor(max_length=100, num_mel_bins=48, mean=-5.5, std=3.25)
# Fields both configs have (ours add labels, dtype, attention and the head's epsilon).
SHARED = [
    f.name
    for f in dataclasses.fields(ASTConfig)
    if f.name not in ("labels", "dtype", "attention", "head_layer_norm_eps")
]


def _assert_configs_agree(ours: ASTConfig, theirs) -> None:
    assert type(theirs).__name__ == "ASTConfig"
    for name in SHARED:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.id2label == theirs.id2label and ours.label2id == theirs.label2id


def _assert_extractors_agree(ours: FeatureExtractor, theirs) -> None:
    assert type(theirs).__name__ == "ASTFeatureExtractor"
    reference = theirs.to_dict()
    assert {key: reference[key] for key in ours.to_dict()} == ours.to_dict()


# ---- ast-jax writes, transformers reads ----------------------------------------------------------


def test_auto_config_reads_config_save_pretrained(tmp_path):
    written = CONFIG.save_pretrained(tmp_path)
    assert written == [str(tmp_path / "config.json")]
    _assert_configs_agree(CONFIG, transformers.AutoConfig.from_pretrained(tmp_path))


def test_auto_config_reads_config_to_json_file(tmp_path):
    CONFIG.to_json_file(tmp_path / "any_name.json")
    _assert_configs_agree(
        CONFIG, transformers.AutoConfig.from_pretrained(tmp_path / "any_name.json")
    )


def test_auto_feature_extractor_reads_save_pretrained(tmp_path):
    written = EXTRACTOR.save_pretrained(tmp_path)
    assert written == [str(tmp_path / "preprocessor_config.json")]
    _assert_extractors_agree(EXTRACTOR, transformers.AutoFeatureExtractor.from_pretrained(tmp_path))


def test_auto_feature_extractor_reads_to_json_file(tmp_path):
    EXTRACTOR.to_json_file(tmp_path / "extractor.json")
    theirs = transformers.AutoFeatureExtractor.from_pretrained(tmp_path / "extractor.json")
    _assert_extractors_agree(EXTRACTOR, theirs)


def test_auto_classes_read_an_ast_jax_checkpoint_directory(tiny_params, tmp_path):
    params = tiny_params(config=CONFIG)
    save_pretrained(tmp_path, CONFIG, params, feature_extractor=EXTRACTOR)
    _assert_configs_agree(CONFIG, transformers.AutoConfig.from_pretrained(tmp_path))
    _assert_extractors_agree(EXTRACTOR, transformers.AutoFeatureExtractor.from_pretrained(tmp_path))
    # ast_jax.safetensors is ast-jax's format; export_hf writes the weights for transformers
    export_hf(tmp_path / "hf", CONFIG, params)
    model, info = transformers.AutoModelForAudioClassification.from_pretrained(
        tmp_path / "hf", output_loading_info=True
    )
    assert type(model).__name__ == "ASTForAudioClassification"
    assert not info["missing_keys"] and not info["unexpected_keys"]
    _assert_configs_agree(CONFIG, model.config)


# ---- transformers writes, ast-jax reads ----------------------------------------------------------


def _hf_config():
    return transformers.AutoConfig.for_model(
        "audio-spectrogram-transformer",
        **{name: getattr(CONFIG, name) for name in SHARED},
        id2label=CONFIG.id2label,
        label2id=CONFIG.label2id,
    )


def test_config_reads_transformers_save_pretrained(tmp_path):
    theirs = _hf_config()
    theirs.save_pretrained(tmp_path)
    _assert_configs_agree(ASTConfig.from_pretrained(tmp_path), theirs)


def test_config_reads_transformers_to_json_file(tmp_path):
    theirs = _hf_config()
    theirs.to_json_file(tmp_path / "c.json")  # transformers' default: the non-default keys only
    _assert_configs_agree(ASTConfig.from_json_file(tmp_path / "c.json"), theirs)
    _assert_configs_agree(ASTConfig.from_pretrained(tmp_path / "c.json"), theirs)


def test_feature_extractor_reads_transformers_files(tmp_path):
    settings = {k: v for k, v in EXTRACTOR.to_dict().items() if k != "feature_extractor_type"}
    theirs = transformers.ASTFeatureExtractor(**settings)
    theirs.save_pretrained(tmp_path)
    assert FeatureExtractor.from_pretrained(tmp_path) == EXTRACTOR
    assert load_feature_extractor(tmp_path) == EXTRACTOR
    theirs.save_pretrained(tmp_path / "sub")
    assert FeatureExtractor.from_pretrained(tmp_path, subfolder="sub") == EXTRACTOR
    theirs.to_json_file(tmp_path / "e.json")
    assert FeatureExtractor.from_json_file(tmp_path / "e.json") == EXTRACTOR
    assert FeatureExtractor.from_pretrained(tmp_path / "e.json") == EXTRACTOR


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_load_pretrained_reads_transformers_model_directories(hf_model, save_hf, tmp_path, weights):
    model = hf_model()
    transformers.ASTFeatureExtractor(max_length=100, num_mel_bins=48).save_pretrained(tmp_path)
    save_hf(model, tmp_path, weights=weights)
    config, params, info = load_pretrained(tmp_path, output_loading_info=True)
    assert info == {
        "missing_keys": [],
        "unexpected_keys": [],
        "mismatched_keys": [],
        "error_msgs": [],
    }
    _assert_configs_agree(config, model.config)
    assert load_feature_extractor(tmp_path) == FeatureExtractor(max_length=100, num_mel_bins=48)
    x = np.random.default_rng(0).normal(0, 0.5, (2, 100, 48)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).logits.numpy()
    with jax.default_matmul_precision("float32"):
        logits = ASTForAudioClassification(config).apply({"params": params}, x).logits
    # float32 in another op order: ~1e-7 apart on these tiny logits (tests/test_model.py measures
    # 1.6e-7); 1e-5 leaves room and still fails on any mapping or layout error.
    np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=1e-5)


# ---- output_* defaults stored in config.json -----------------------------------------------------


def test_output_defaults_in_config_json_are_honoured_both_ways(
    tiny_params, hf_model, save_hf, tmp_path
):
    # ours -> transformers: CONFIG asks for hidden states by default
    params = tiny_params(config=CONFIG)
    export_hf(tmp_path / "ours", CONFIG, params)
    theirs = transformers.ASTForAudioClassification.from_pretrained(tmp_path / "ours").eval()
    x = np.zeros((1, 100, 48), np.float32)
    with torch.no_grad():
        assert len(theirs(torch.from_numpy(x)).hidden_states) == 3
    config, params = load_pretrained(tmp_path / "ours")
    assert config.output_hidden_states and not config.output_attentions
    out = ASTForAudioClassification(config).apply({"params": params}, x)
    assert len(out.hidden_states) == 3 and out.attentions is None
    out = ASTForAudioClassification(config).apply({"params": params}, x, output_hidden_states=False)
    assert out.hidden_states is None  # the call's argument wins

    # transformers -> ours: a config.json that asks for attentions
    model = hf_model(output_attentions=True)
    save_hf(model, tmp_path / "theirs")
    config, params = load_pretrained(tmp_path / "theirs")
    assert config.output_attentions
    out = ASTForAudioClassification(config).apply(
        {"params": params}, np.zeros((1, 100, 48), np.float32)
    )
    with torch.no_grad():
        expected = model(torch.zeros(1, 100, 48)).attentions
    assert len(out.attentions) == len(expected) == 2
