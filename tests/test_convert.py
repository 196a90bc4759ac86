"""HF state dict <-> ast-jax params: layout rules, strict errors, bit-exact round trips."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file

from ast_jax import ASTConfig, export_hf, load_pretrained, params_from_hf, params_to_hf
from ast_jax.checkpoints.keymaps import HF_PREFIX


@pytest.fixture(scope="module")
def checkpoint(hf_model, save_hf, tmp_path_factory):
    """(config, on-disk HF state dict, transformers model) for a tiny classifier."""
    model = hf_model(frequency_stride=12, time_stride=7)
    directory = save_hf(model, tmp_path_factory.mktemp("hf"))
    config = ASTConfig.from_json_file(directory / "config.json")
    return config, load_file(directory / "model.safetensors"), model


def _arrays_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_layout_rules(checkpoint):
    config, state_dict, _ = checkpoint
    params = params_from_hf(state_dict, config)
    layer = params["backbone"]["layer_1"]
    src = f"{HF_PREFIX}encoder.layer.1."
    d = config.hidden_size
    qkv = layer["attention"]["qkv"]["kernel"]  # (D, 3D) = [q | k | v]
    for j, name in enumerate(("query", "key", "value")):
        weight = state_dict[f"{src}attention.attention.{name}.weight"]
        np.testing.assert_array_equal(qkv[:, j * d : (j + 1) * d], weight.T)
        bias = state_dict[f"{src}attention.attention.{name}.bias"]
        np.testing.assert_array_equal(layer["attention"]["qkv"]["bias"][j * d : (j + 1) * d], bias)
    conv = state_dict[f"{HF_PREFIX}embeddings.patch_embeddings.projection.weight"]  # (D, 1, P, P)
    kernel = params["backbone"]["embeddings"]["patch_projection"]["kernel"]  # (P, P, 1, D)
    np.testing.assert_array_equal(kernel[3, 5, 0, 7], conv[7, 0, 3, 5])
    np.testing.assert_array_equal(
        layer["layernorm_after"]["scale"], state_dict[f"{src}layernorm_after.weight"]
    )
    np.testing.assert_array_equal(
        layer["mlp"]["fc2"]["kernel"], state_dict[f"{src}output.dense.weight"].T
    )


def test_round_trip_is_bit_exact(checkpoint):
    config, state_dict, _ = checkpoint
    assert _arrays_equal(params_to_hf(params_from_hf(state_dict, config), config), state_dict)


def test_backbone_round_trip_is_unprefixed(checkpoint):
    config, state_dict, _ = checkpoint
    params = params_from_hf(state_dict, config, with_head=False)  # head dropped on purpose
    assert set(params) == {"embeddings", "layer_0", "layer_1", "layernorm"}
    back = params_to_hf(params, config)
    expected = {
        k.removeprefix(HF_PREFIX): v for k, v in state_dict.items() if k.startswith(HF_PREFIX)
    }
    assert _arrays_equal(back, expected)
    assert _arrays_equal(params_to_hf(params_from_hf(back, config, with_head=False), config), back)


def test_transformers_5_in_memory_names(checkpoint):
    config, state_dict, model = checkpoint
    in_memory = {k: v.numpy() for k, v in model.state_dict().items()}
    assert any(".q_proj." in k for k in in_memory)
    assert _arrays_equal(params_to_hf(params_from_hf(in_memory, config), config), state_dict)


def test_missing_and_unexpected_keys_are_named(checkpoint):
    config, state_dict, _ = checkpoint
    broken = dict(state_dict)
    del broken[f"{HF_PREFIX}encoder.layer.0.attention.attention.key.bias"]
    broken["classifier.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError) as error:
        params_from_hf(broken, config)
    message = str(error.value)
    assert f"missing: {HF_PREFIX}encoder.layer.0.attention.attention.key.bias" in message
    assert "unexpected: classifier.extra.weight" in message


def test_shape_mismatch_is_named(checkpoint):
    config, state_dict, _ = checkpoint
    other = dataclasses.replace(config, labels=("a", "b"))
    with pytest.raises(ValueError, match=r"shape mismatch: classifier.dense.weight is \(5, 32\), "):
        params_from_hf(state_dict, other)


def test_backbone_checkpoint_into_classifier_reports_missing_head(checkpoint):
    config, state_dict, _ = checkpoint
    backbone = {
        k.removeprefix(HF_PREFIX): v for k, v in state_dict.items() if "classifier" not in k
    }
    with pytest.raises(ValueError, match=r"missing: classifier\.dense\.weight"):
        params_from_hf(backbone, config)


def test_duplicate_prefixed_and_unprefixed_keys(checkpoint):
    config, state_dict, _ = checkpoint
    duplicated = {**state_dict, "layernorm.bias": state_dict[f"{HF_PREFIX}layernorm.bias"]}
    with pytest.raises(ValueError, match=r"duplicate: .*layernorm\.bias"):
        params_from_hf(duplicated, config)


def test_params_to_hf_checks_the_tree(checkpoint):
    config, state_dict, _ = checkpoint
    params = params_from_hf(state_dict, config)
    del params["backbone"]["layer_1"]["mlp"]
    with pytest.raises(ValueError, match="missing: backbone/layer_1/mlp/fc1/kernel"):
        params_to_hf(params, config)


@pytest.mark.parametrize("with_head", [True, False])
def test_export_hf_loads_in_transformers(checkpoint, tmp_path, with_head):
    config, state_dict, model = checkpoint
    params = params_from_hf(state_dict, config, with_head=with_head)
    export_hf(tmp_path, config, params)
    cls = transformers.ASTForAudioClassification if with_head else transformers.ASTModel
    loaded, info = cls.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"]
    assert not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    reference = (
        model.state_dict() if with_head else model.audio_spectrogram_transformer.state_dict()
    )
    loaded_state = loaded.state_dict()
    assert loaded_state.keys() == reference.keys()
    assert all(torch.equal(loaded_state[k], reference[k]) for k in reference)  # bit-exact
    # and back into JAX, bit-exact
    reloaded_config, reloaded = load_pretrained(tmp_path)
    assert reloaded_config == config
    assert _arrays_equal(params_to_hf(reloaded, config), params_to_hf(params, config))
