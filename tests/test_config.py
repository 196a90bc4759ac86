"""ASTConfig: HF defaults and config.json round trips, validation, presets and parameter counts."""

from __future__ import annotations

import dataclasses
import json
import warnings

import jax
import pytest
import transformers

from ast_jax import ASTConfig
from ast_jax.config import PRESETS, SPEECH_COMMANDS_LABELS
from ast_jax.model.params import abstract_params

# head_layer_norm_eps is ours (timm-exact mode); transformers uses layer_norm_eps for the head.
OWN_FIELDS = ("labels", "dtype", "attention", "head_layer_norm_eps")
HF_FIELDS = [f.name for f in dataclasses.fields(ASTConfig) if f.name not in OWN_FIELDS]


def test_defaults_match_transformers():
    hf = transformers.ASTConfig()
    ours = ASTConfig()
    for name in HF_FIELDS:
        assert getattr(ours, name) == getattr(hf, name), name
    assert ours.num_labels == hf.num_labels == 2
    assert ours.id2label == hf.id2label


def test_hf_config_json_round_trip(tmp_path):
    hf = transformers.ASTConfig(
        hidden_size=48,
        num_hidden_layers=3,
        frequency_stride=12,
        time_stride=14,
        max_length=512,
        qkv_bias=False,
        hidden_act="gelu_new",
        id2label={0: "dog", 1: "cat", 2: "bird"},
        label2id={"dog": 0, "cat": 1, "bird": 2},
        problem_type="multi_label_classification",
    )
    hf.to_json_file(tmp_path / "hf.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # generic HF keys must not warn
        ours = ASTConfig.from_json_file(tmp_path / "hf.json")
    assert ours.labels == ("dog", "cat", "bird")
    assert ours.label2id == {"dog": 0, "cat": 1, "bird": 2}
    ours.to_json_file(tmp_path / "ours.json")
    back = transformers.ASTConfig.from_json_file(tmp_path / "ours.json")
    for name in HF_FIELDS:
        assert getattr(back, name) == getattr(hf, name), name
    assert back.id2label == hf.id2label
    assert ASTConfig.from_json_file(tmp_path / "ours.json") == ours


def test_old_field_names_are_accepted():
    config = ASTConfig.from_hf_dict({"frequency_dimension": 64, "time_dimension": 128})
    assert (config.num_mel_bins, config.max_length) == (64, 128)


def test_unknown_keys_warn_by_name():
    with pytest.warns(UserWarning, match=r"\['frobnicate'\]"):
        ASTConfig.from_hf_dict({"frobnicate": 1, "architectures": ["X"], "torch_dtype": "float16"})


def test_label_sources_and_consistency():
    assert ASTConfig.from_hf_dict({"num_labels": 3}).labels == ("LABEL_0", "LABEL_1", "LABEL_2")
    assert ASTConfig.from_hf_dict({"label2id": {"b": 1, "a": 0}}).labels == ("a", "b")
    assert ASTConfig.from_hf_dict({"id2label": {}}).num_labels == 0
    with pytest.raises(ValueError, match="num_labels"):
        ASTConfig.from_hf_dict({"id2label": {"0": "a"}, "num_labels": 2})
    with pytest.raises(ValueError, match=r"label ids must be 0\.\.1"):
        ASTConfig.from_hf_dict({"id2label": {"0": "a", "2": "b"}})


def test_dtype_is_a_runtime_choice_not_read_from_hf():
    config = ASTConfig.from_hf_dict({"dtype": "float16"}, dtype="bfloat16")
    assert config.dtype == "bfloat16"
    assert "dtype" not in config.to_hf_dict()


def test_attention_is_a_runtime_choice_not_written():
    with pytest.warns(UserWarning, match="attention"):  # an unknown key there, not taken
        config = ASTConfig.from_hf_dict({"attention": "cudnn"})
    assert config.attention == "auto"
    assert "attention" not in ASTConfig(attention="xla").to_hf_dict()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("hidden_size", 0, "hidden_size must be an int >= 1, got 0"),
        ("num_attention_heads", 5, r"hidden_size \(768\) must be divisible"),
        ("patch_size", 200, r"num_mel_bins must be >= patch_size \(200\)"),
        ("hidden_dropout_prob", 1.0, r"hidden_dropout_prob must be in \[0, 1\), got 1.0"),
        ("layer_norm_eps", 0.0, "layer_norm_eps must be > 0"),
        ("hidden_act", "swish", "hidden_act must be one of"),
        ("dtype", "float64", "dtype must be one of"),
        ("attention", "flash", "attention must be one of"),
        ("problem_type", "ranking", "problem_type must be one of"),
        ("qkv_bias", 1, "qkv_bias must be a bool"),
        ("max_length", 10.5, "max_length must be an int"),
        ("labels", (1, 2), "labels must all be str"),
    ],
)
def test_validation_errors_name_value_and_range(field, value, match):
    with pytest.raises(ValueError, match=match):
        ASTConfig(**{field: value})


def test_non_square_patch_is_refused():
    with pytest.raises(ValueError, match=r"only square patches"):
        ASTConfig.from_hf_dict({"patch_size": [16, 8]})
    assert ASTConfig.from_hf_dict({"patch_size": [8, 8]}).patch_size == 8


def test_hashable_static_jit_argument():
    config = ASTConfig(labels=["x", "y"])
    assert config.labels == ("x", "y")
    assert hash(config) == hash(ASTConfig(labels=("x", "y")))
    calls = []

    def f(x, config):
        calls.append(config)
        return x * config.num_labels

    jitted = jax.jit(f, static_argnums=1)
    assert int(jitted(1, config)) == 2
    assert int(jitted(1, ASTConfig(labels=("x", "y")))) == 2
    assert len(calls) == 1  # the equal config hit the cache


@pytest.mark.parametrize(
    ("stride", "max_length", "f_dim", "t_dim", "seq_len"),
    [  # f_dim = (num_mel_bins - 16) // stride + 1, t_dim likewise, seq_len = 2 + f_dim * t_dim
        (10, 1024, 12, 101, 1214),
        (12, 1024, 10, 85, 852),
        (14, 1024, 9, 73, 659),
        (16, 1024, 8, 64, 514),
        (10, 512, 12, 50, 602),
        (10, 128, 12, 12, 146),
    ],
)
def test_derived_sizes(stride, max_length, f_dim, t_dim, seq_len):
    config = ASTConfig(frequency_stride=stride, time_stride=stride, max_length=max_length)
    assert (config.f_dim, config.t_dim, config.seq_len) == (f_dim, t_dim, seq_len)
    assert config.num_patches == seq_len - 2


# Parameter counts of transformers' ASTForAudioClassification for each preset (counted once with
# torch on the meta device); checked below against both our init tree and a closed-form count.
PRESET_PARAMS = {
    "MIT/ast-finetuned-audioset-10-10-0.4593": 86_594_063,
    "MIT/ast-finetuned-audioset-10-10-0.450": 86_594_063,
    "MIT/ast-finetuned-audioset-10-10-0.448": 86_594_063,
    "MIT/ast-finetuned-audioset-10-10-0.448-v2": 86_594_063,
    "MIT/ast-finetuned-audioset-12-12-0.447": 86_316_047,
    "MIT/ast-finetuned-audioset-14-14-0.443": 86_167_823,
    "MIT/ast-finetuned-audioset-16-16-0.442": 86_056_463,
    "MIT/ast-finetuned-speech-commands-v2": 85_395_491,
}


def _closed_form_count(c: ASTConfig) -> int:
    d, i, p = c.hidden_size, c.intermediate_size, c.patch_size
    embeddings = p * p * d + d + 2 * d + c.seq_len * d
    attention = 3 * d * d + (3 * d if c.qkv_bias else 0) + d * d + d
    layer = 2 * 2 * d + attention + d * i + i + i * d + d
    head = 2 * d + (d * c.num_labels + c.num_labels if c.num_labels else 0)
    return embeddings + c.num_hidden_layers * layer + 2 * d + head


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_parameter_counts(name):
    config = ASTConfig.from_preset(name)
    count = sum(leaf.size for leaf in jax.tree.leaves(abstract_params(config)))
    assert count == PRESET_PARAMS[name] == _closed_form_count(config)


def test_presets():
    assert set(PRESETS) == set(PRESET_PARAMS)
    speech = ASTConfig.from_preset("MIT/ast-finetuned-speech-commands-v2")
    assert speech.max_length == 128 and speech.labels == SPEECH_COMMANDS_LABELS
    assert speech.label2id["backward"] == 0 and speech.id2label[34] == "one"
    audioset = ASTConfig.from_preset("MIT/ast-finetuned-audioset-14-14-0.443", dtype="bfloat16")
    assert (audioset.frequency_stride, audioset.time_stride, audioset.num_labels) == (14, 14, 527)
    assert audioset.dtype == "bfloat16"
    with pytest.raises(ValueError, match="unknown preset 'MIT/ast-tiny'"):
        ASTConfig.from_preset("MIT/ast-tiny")


def test_to_hf_dict_is_json():
    data = json.loads(
        json.dumps(ASTConfig.from_preset("MIT/ast-finetuned-speech-commands-v2").to_hf_dict())
    )
    assert data["model_type"] == "audio-spectrogram-transformer"
    assert data["id2label"]["0"] == "backward" and data["max_length"] == 128
