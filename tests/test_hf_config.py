"""transformers' config tests for AST, ported to `ast_jax.ASTConfig`.

Source: transformers' `ConfigTester.run_common_tests` (tests/test_configuration_common.py), which
`ASTModelTest.test_config` runs as `ConfigTester(self, config_class=ASTConfig,
has_text_modality=False, hidden_size=32)`. Each of its eight checks is one test here, under its
own name; transformers' `ASTConfig` runs live beside ours as the reference wherever a value can be
compared.

Ported (8): create_and_test_config_common_properties, create_and_test_config_to_json_string,
create_and_test_config_to_json_file, create_and_test_config_from_and_save_pretrained,
create_and_test_config_from_and_save_pretrained_subfolder, create_and_test_config_with_num_labels,
check_config_can_be_init_without_params, check_config_arguments_init.

Deliberately different (README, "Differences from transformers"), each kept and tested:
* the config is frozen (a static `jax.jit` argument): `config.x = v` raises, `config.replace(x=v)`
  is the spelling (common_properties, with_num_labels);
* invalid values raise at construction (transformers accepts `hidden_size=0`, or hidden_size=32
  with 12 heads, which is ConfigTester's input for AST): common_properties, and the cases below
  that build ConfigTester's config get its head count too (to_json_string, to_json_file,
  from_and_save_pretrained, from_and_save_pretrained_subfolder, with_num_labels);
* `label2id` is derived from the labels, so its ids are ints; transformers keeps the mapping it
  was given (config_common_kwargs' `{"label": "0"}` stays a string id) (arguments_init);
* unknown constructor arguments raise `TypeError`; transformers keeps any keyword as an attribute,
  including its PyTorch and text-generation ones (arguments_init).

Not applicable: the composite-config checks (AST has no sub-configs).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile

import pytest
import transformers

from ast_jax import ASTConfig

# ConfigTester's inputs_dict for AST is hidden_size=32 alone: with AST's default 12 heads that is
# no model (32 is not a multiple of 12). transformers builds the config and fails only when a model
# is made; ast-jax refuses it at once (see test_config_common_properties). The ported cases add the
# head count of transformers' ASTModelTester.
INPUTS = {"hidden_size": 32, "num_attention_heads": 4}
# Fields that transformers' ASTConfig has too (ours add labels, dtype, attention, head eps).
SHARED = [
    f.name
    for f in dataclasses.fields(ASTConfig)
    if f.name not in ("labels", "dtype", "attention", "head_layer_norm_eps")
]
# config_common_kwargs (transformers' tests/utils/test_configuration_utils.py): the entries that
# name something an AST config has. The others are PyTorch, text or generation settings.
COMMON_KWARGS = {
    "output_hidden_states": True,
    "output_attentions": True,
    "max_length": 50,
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
}
NOT_AST_KWARGS = {
    "return_dict": False,
    "torchscript": True,
    "pruned_heads": {"a": 1},
    "is_decoder": True,
    "architectures": ["BertModel"],
    "tokenizer_class": "BertTokenizerFast",
    "chunk_size_feed_forward": 5,
}


def _same_as_transformers(ours: ASTConfig, theirs: transformers.ASTConfig) -> None:
    for name in SHARED:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.id2label == theirs.id2label
    assert ours.label2id == theirs.label2id


def test_config_common_properties():
    config = ASTConfig(**INPUTS)
    for name in ("hidden_size", "num_attention_heads", "num_hidden_layers"):
        assert hasattr(config, name), name
    # Difference: frozen. transformers assigns; we replace.
    for idx, name in enumerate(("hidden_size", "num_attention_heads", "num_hidden_layers")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(config, name, idx)
    assert config.replace(num_attention_heads=1).num_attention_heads == 1
    assert config.replace(num_hidden_layers=2).num_hidden_layers == 2
    # Config(prop=idx): transformers takes hidden_size=0; we refuse an empty model at once.
    assert ASTConfig(num_attention_heads=1).num_attention_heads == 1
    assert ASTConfig(num_hidden_layers=2).num_hidden_layers == 2
    assert transformers.ASTConfig(hidden_size=0).hidden_size == 0
    with pytest.raises(ValueError, match="hidden_size must be an int >= 1, got 0"):
        ASTConfig(hidden_size=0)
    assert transformers.ASTConfig(hidden_size=32).num_attention_heads == 12
    with pytest.raises(ValueError, match=r"hidden_size \(32\) must be divisible"):
        ASTConfig(hidden_size=32)


def test_config_to_json_string():
    config = ASTConfig(**INPUTS)
    obj = json.loads(config.to_json_string())
    for key, value in INPUTS.items():
        assert obj[key] == value
    reference = json.loads(transformers.ASTConfig(**INPUTS).to_json_string(use_diff=False))
    for name in SHARED:
        assert obj[name] == reference[name], name
    assert obj["id2label"] == reference["id2label"]
    assert obj["model_type"] == reference["model_type"]


def test_config_to_json_file():
    config_first = ASTConfig(**INPUTS)
    with tempfile.TemporaryDirectory() as tmpdirname:
        json_file_path = os.path.join(tmpdirname, "config.json")
        config_first.to_json_file(json_file_path)
        config_second = ASTConfig.from_json_file(json_file_path)
        theirs = transformers.ASTConfig.from_json_file(json_file_path)
    assert config_second.to_dict() == config_first.to_dict()
    _same_as_transformers(config_second, theirs)


def test_config_from_and_save_pretrained():
    config_first = ASTConfig(**INPUTS)
    with tempfile.TemporaryDirectory() as tmpdirname:
        config_first.save_pretrained(tmpdirname)
        config_second = ASTConfig.from_pretrained(tmpdirname)
        theirs = transformers.ASTConfig.from_pretrained(tmpdirname)
    assert config_second.to_dict() == config_first.to_dict()
    _same_as_transformers(config_second, theirs)
    with pytest.raises(OSError):
        ASTConfig.from_pretrained(f".{tmpdirname}")


def test_config_from_and_save_pretrained_subfolder():
    config_first = ASTConfig(**INPUTS)
    subfolder = "test"
    with tempfile.TemporaryDirectory() as tmpdirname:
        sub_tmpdirname = os.path.join(tmpdirname, subfolder)
        config_first.save_pretrained(sub_tmpdirname)
        config_second = ASTConfig.from_pretrained(tmpdirname, subfolder=subfolder)
        theirs = transformers.ASTConfig.from_pretrained(tmpdirname, subfolder=subfolder)
        with pytest.raises(FileNotFoundError, match=r"no config\.json"):
            ASTConfig.from_pretrained(tmpdirname)  # not at the top
    assert config_second.to_dict() == config_first.to_dict()
    _same_as_transformers(config_second, theirs)


def test_config_with_num_labels():
    config = ASTConfig(**INPUTS, num_labels=5)
    assert len(config.id2label) == 5
    assert len(config.label2id) == 5
    theirs = transformers.ASTConfig(**INPUTS, num_labels=5)
    assert config.id2label == theirs.id2label and config.label2id == theirs.label2id

    # Difference: transformers assigns `config.num_labels = 3`; the frozen config is replaced.
    config = config.replace(num_labels=3)
    assert len(config.id2label) == 3
    assert len(config.label2id) == 3
    theirs.num_labels = 3
    assert config.id2label == theirs.id2label and config.label2id == theirs.label2id
    # The names stay when the count does, as transformers keeps its id2label.
    named = ASTConfig(labels=("a", "b", "c"))
    assert named.replace(num_labels=3).labels == ("a", "b", "c")


def test_config_can_be_init_without_params():
    config = ASTConfig()
    assert config is not None
    _same_as_transformers(config, transformers.ASTConfig())


def test_config_arguments_init():
    config = ASTConfig(**COMMON_KWARGS)
    theirs = transformers.ASTConfig(**COMMON_KWARGS)
    wrong_values = []
    for key, value in COMMON_KWARGS.items():
        if key == "label2id":  # difference: ids are ints, derived from the labels
            assert theirs.label2id == value == {"label": "0"}
            value = {"label": 0}
        elif getattr(config, key) != getattr(theirs, key):
            wrong_values.append((key, getattr(config, key), getattr(theirs, key)))
        if getattr(config, key) != value:
            wrong_values.append((key, getattr(config, key), value))
    assert not wrong_values, wrong_values
    # Difference: the PyTorch / text-generation arguments of transformers' base config are not
    # settings of this model, and unknown keywords raise rather than become attributes.
    for key, value in NOT_AST_KWARGS.items():
        assert getattr(transformers.ASTConfig(**{key: value}), key) == value
        with pytest.raises(TypeError, match=key):
            ASTConfig(**{key: value})
