"""save_pretrained / load_pretrained: formats, round trips, the hub path and clear errors."""

from __future__ import annotations

import collections
import dataclasses
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
import transformers
from flax.traverse_util import flatten_dict

from ast_jax import (
    FeatureExtractor,
    export_hf,
    load_feature_extractor,
    load_pretrained,
    save_pretrained,
)
from ast_jax.checkpoints.pretrained import WEIGHTS_NAME
from ast_jax.checkpoints.sources import load_model
from ast_jax.checkpoints.torch_pickle import UnsafePickleError, read_torch_zip


@pytest.fixture(scope="module")
def params(tiny_params, small_config):
    return tiny_params(config=small_config)


@pytest.fixture(scope="module")
def hf_dir(hf_model, save_hf, tmp_path_factory):
    """A transformers checkpoint directory with model.safetensors and preprocessor_config.json."""
    directory = save_hf(hf_model(), tmp_path_factory.mktemp("hf"))
    transformers.ASTFeatureExtractor(max_length=100, num_mel_bins=48).save_pretrained(directory)
    return directory


def _trees_equal(a, b) -> bool:
    a, b = flatten_dict(a, sep="/"), flatten_dict(b, sep="/")
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ---- ast-jax directories ----------------------------------------------------------------------


def test_save_load_round_trip_is_bit_exact(small_config, tmp_path, params):
    extractor = FeatureExtractor(max_length=40, num_mel_bins=20)
    save_pretrained(tmp_path, small_config, params, feature_extractor=extractor)
    assert sorted(os.listdir(tmp_path)) == [
        "ast_jax.safetensors",
        "config.json",
        "preprocessor_config.json",
    ]
    config, loaded = load_pretrained(tmp_path)
    assert config == small_config
    assert _trees_equal(loaded, params)
    assert load_feature_extractor(tmp_path) == extractor
    with safetensors.safe_open(tmp_path / WEIGHTS_NAME, "np") as file:
        assert file.metadata() == {"format": "ast-jax", "version": "1"}
        assert "backbone/layer_0/attention/qkv/kernel" in file.keys()
    _, backbone = load_pretrained(tmp_path, with_head=False)
    assert _trees_equal(backbone, params["backbone"])
    bf16_config, _ = load_pretrained(tmp_path, dtype="bfloat16")
    assert bf16_config.dtype == "bfloat16"


def test_save_is_atomic(small_config, tmp_path, params, monkeypatch):
    save_pretrained(tmp_path, small_config, params)
    before = (tmp_path / WEIGHTS_NAME).read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(tmp_path, small_config, jax.tree.map(lambda p: p + 1, params))
    assert (tmp_path / WEIGHTS_NAME).read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ast_jax.safetensors", "config.json"]  # no temp files


def test_save_refuses_params_for_another_config(small_config, tmp_path, params):
    with pytest.raises(ValueError, match="mismatch: classifier/dense/kernel"):
        save_pretrained(tmp_path, dataclasses.replace(small_config, labels=("a", "b")), params)
    assert not os.listdir(tmp_path)


def test_wrong_metadata_is_refused(small_config, tmp_path, params):
    save_pretrained(tmp_path, small_config, params)
    tensors = safetensors.numpy.load_file(tmp_path / WEIGHTS_NAME)
    safetensors.numpy.save_file(tensors, tmp_path / WEIGHTS_NAME, metadata={"format": "pt"})
    with pytest.raises(ValueError, match="expected metadata"):
        load_pretrained(tmp_path)


# ---- Hugging Face directories -----------------------------------------------------------------


def test_hf_safetensors_bin_and_restricted_bin_agree(hf_dir, tmp_path, monkeypatch):
    config, from_safetensors = load_pretrained(hf_dir)
    assert config.labels == tuple(f"LABEL_{i}" for i in range(5))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    state_dict = collections.OrderedDict(safetensors.torch.load_file(hf_dir / "model.safetensors"))
    torch.save(state_dict, bin_dir / "pytorch_model.bin")
    _, via_torch = load_pretrained(bin_dir)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    _, via_restricted = load_pretrained(bin_dir)
    assert _trees_equal(via_torch, from_safetensors)
    assert _trees_equal(via_restricted, from_safetensors)


def test_restricted_reader_matches_torch_load(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tensors = collections.OrderedDict(
        transposed=base.t(),  # non-contiguous view: stride (1, 6)
        offset_view=base[1:, 2:],  # shares base's storage at an offset
        base=base,
        half=torch.randn(3, 2).half(),
        bfloat16=torch.randn(5).bfloat16(),
        int64=torch.arange(7),
        scalar=torch.tensor(3.5),
    )
    torch.save(tensors, tmp_path / "t.bin")
    ours = read_torch_zip(tmp_path / "t.bin")
    assert list(ours) == list(tensors)
    for name, tensor in tensors.items():
        expected = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        np.testing.assert_array_equal(ours[name].astype(expected.dtype), expected, err_msg=name)


class _Exploit:
    """Pickles as a call to `os.system`; unpickling it naively would run the command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("reader", ["torch", "restricted"])
def test_malicious_pickle_is_refused_without_side_effect(hf_dir, tmp_path, monkeypatch, reader):
    marker = tmp_path / "pwned"
    (tmp_path / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    payload = collections.OrderedDict(weight=torch.zeros(2), evil=_Exploit(marker))
    torch.save(payload, tmp_path / "pytorch_model.bin")
    if reader == "restricted":
        monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(UnsafePickleError, match="system" if reader == "restricted" else "refused"):
        load_pretrained(tmp_path)
    assert not marker.exists()


def test_not_a_zip_bin_is_refused(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="not a torch ZIP checkpoint"):
        read_torch_zip(tmp_path / "x.bin")


@pytest.mark.parametrize("damage", ["truncated", "garbage_header"])
def test_corrupt_safetensors_is_a_clear_error(hf_dir, tmp_path, damage):
    data = (hf_dir / "model.safetensors").read_bytes()
    damaged = data[: len(data) // 2] if damage == "truncated" else b"\x10\x00" + os.urandom(64)
    (tmp_path / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    (tmp_path / "model.safetensors").write_bytes(damaged)
    with pytest.raises(ValueError, match="corrupt or truncated safetensors"):
        load_pretrained(tmp_path)


def test_missing_files_and_paths(hf_dir, tmp_path):
    (tmp_path / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_pretrained(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "model.safetensors").write_bytes((hf_dir / "model.safetensors").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_pretrained(empty)
    with pytest.raises(FileNotFoundError, match="neither a directory nor a hub repo id"):
        load_pretrained(str(tmp_path / "does" / "not" / "exist"))
    with pytest.raises(NotADirectoryError, match="is a file"):
        load_pretrained(hf_dir / "config.json")
    with pytest.raises(FileNotFoundError, match=r"preprocessor_config\.json"):
        load_feature_extractor(empty)


def test_feature_extractor_from_hf_directory(hf_dir):
    assert load_feature_extractor(hf_dir) == FeatureExtractor(max_length=100, num_mel_bins=48)


def test_hf_backbone_only_into_classifier_loads_with_a_report(hf_model, save_hf, tmp_path):
    # As transformers: the head is initialised, and named in a warning and the loading info.
    save_hf(hf_model(with_head=False), tmp_path)
    _, backbone = load_pretrained(tmp_path)
    assert "classifier" not in backbone
    with pytest.warns(UserWarning, match=r"newly initialised: \['classifier\.dense\.bias'"):
        _, params, info = load_pretrained(tmp_path, with_head=True, output_loading_info=True)
    assert info["missing_keys"] == [
        "classifier.dense.bias",
        "classifier.dense.weight",
        "classifier.layernorm.bias",
        "classifier.layernorm.weight",
    ]
    assert _trees_equal(params["backbone"], backbone)


def test_only_the_missing_part_of_a_fused_leaf_is_initialised(hf_model, save_hf, tmp_path):
    directory = save_hf(hf_model(), tmp_path)
    _, complete = load_pretrained(directory)
    state_dict = safetensors.numpy.load_file(directory / "model.safetensors")
    key_bias = "audio_spectrogram_transformer.encoder.layer.1.attention.attention.key.bias"
    del state_dict[key_bias]
    safetensors.numpy.save_file(state_dict, directory / "model.safetensors", {"format": "pt"})
    with pytest.warns(UserWarning, match="newly initialised"):
        _, params, info = load_pretrained(directory, output_loading_info=True)
    assert info["missing_keys"] == [key_bias]
    d = 32  # hidden size: the fused bias is [q | k | v]
    fused = params["backbone"]["layer_1"]["attention"]["qkv"]["bias"]
    expected = complete["backbone"]["layer_1"]["attention"]["qkv"]["bias"]
    np.testing.assert_array_equal(fused[:d], expected[:d])
    np.testing.assert_array_equal(fused[2 * d :], expected[2 * d :])
    np.testing.assert_array_equal(fused[d : 2 * d], 0.0)  # a new bias: HF's init, zeros


# ---- hub ids ------------------------------------------------------------------------------------


def test_hub_id_downloads_through_huggingface_hub(hf_dir, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, *, revision=None, allow_patterns=None):
        calls.append((repo_id, revision, allow_patterns))
        return str(hf_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    config, params = load_pretrained("MIT/some-ast", revision="main")
    assert config.num_labels == 5 and "classifier" in params
    assert calls[0][:2] == ("MIT/some-ast", "main")
    assert "model.safetensors" in calls[0][2] and "pytorch_model.bin" not in calls[0][2]
    assert load_feature_extractor("MIT/some-ast").max_length == 100


def test_hub_repo_without_safetensors_fetches_the_pickle(hf_dir, tmp_path, monkeypatch):
    import huggingface_hub

    (tmp_path / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    state_dict = collections.OrderedDict(safetensors.torch.load_file(hf_dir / "model.safetensors"))
    torch.save(state_dict, tmp_path / "pytorch_model.bin")
    patterns = []

    def fake_snapshot_download(repo_id, *, revision=None, allow_patterns=None):
        patterns.append(allow_patterns)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    _, params = load_pretrained("someone/ast-bin-only")
    assert _trees_equal(params, load_pretrained(hf_dir)[1])
    assert ["pytorch_model.bin" in p for p in patterns] == [False, True]


def test_hub_errors_are_clear(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(repo_id, **kwargs):
        raise LocalEntryNotFoundError("cannot reach the hub and nothing is cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(OSError, match="could not be downloaded from the Hugging Face hub"):
        load_pretrained("MIT/ast-finetuned-audioset-10-10-0.4593")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ImportError, match="needs huggingface_hub"):
        load_pretrained("MIT/ast-finetuned-audioset-10-10-0.4593")


def test_ast_jax_never_imports_torch_or_transformers():
    code = "import sys, ast_jax; print('torch' in sys.modules, 'transformers' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_inference_refuses_a_checkpoint_with_missing_weights(
    tiny_config, tiny_params, save_tiny_checkpoint, tmp_path
):
    """`load_pretrained` loads a partial checkpoint as transformers does (missing weights
    initialised, with a warning); inference (`load_model`, the CLI, `AudioClassifier`) must not run
    such a model."""
    flat = flatten_dict(tiny_params(), sep="/")
    del flat["backbone/layer_1/mlp/fc2/kernel"]
    directory = save_tiny_checkpoint(tmp_path / "partial")
    safetensors.numpy.save_file(
        {k: np.asarray(v) for k, v in flat.items()},
        directory / WEIGHTS_NAME,
        metadata={"format": "ast-jax", "version": "1"},
    )
    with pytest.warns(UserWarning):
        _, params = load_pretrained(directory)  # lenient, as transformers
    assert "kernel" in params["backbone"]["layer_1"]["mlp"]["fc2"]  # re-initialised
    with pytest.raises(ValueError, match=r"lacks 1 weight.*layer_1.*random weights"):
        load_model(directory)


def test_a_checkpoint_directory_is_written_whole(
    tiny_config, tiny_params, tiny_extractor, tmp_path
):
    """No file of an earlier checkpoint survives a new one: an extractor comes with the call."""
    target = tmp_path / "hf"
    export_hf(target, tiny_config, tiny_params(), feature_extractor=tiny_extractor)
    assert FeatureExtractor.from_pretrained(target) == tiny_extractor
    assert transformers.ASTFeatureExtractor.from_pretrained(target).max_length == 128
    export_hf(target, tiny_config, tiny_params())
    assert sorted(os.listdir(target)) == ["config.json", "model.safetensors"]
    save_pretrained(target, tiny_config, tiny_params())
    assert sorted(os.listdir(target)) == ["ast_jax.safetensors", "config.json"]
