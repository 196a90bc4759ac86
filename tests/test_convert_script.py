"""conversion/convert_pytorch.py: HF directory -> ast-jax directory, with the --check parity run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import transformers
from flax.traverse_util import flatten_dict

from ast_jax import load_feature_extractor, load_pretrained

SCRIPT = Path(__file__).parents[1] / "conversion" / "convert_pytorch.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("convert_pytorch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hf_dir(hf_model, save_hf, tmp_path_factory):
    directory = tmp_path_factory.mktemp("hf")
    save_hf(hf_model(max_length=128, num_mel_bins=128, num_labels=35), directory)
    extractor = transformers.ASTFeatureExtractor(max_length=128, mean=-6.845978, std=5.5654526)
    extractor.save_pretrained(directory)
    return directory


def test_convert_and_check(script, hf_dir, tmp_path, capsys):
    assert script.main([str(hf_dir), str(tmp_path / "out"), "--check"]) == 0
    output = capsys.readouterr().out
    assert "max |logit diff| end to end" in output and "OK: within tolerance 1.0e-04" in output
    config, params = load_pretrained(tmp_path / "out")
    _, reference = load_pretrained(hf_dir)
    assert config.num_labels == 35
    flat, flat_reference = flatten_dict(params), flatten_dict(reference)
    assert all(np.array_equal(flat[k], flat_reference[k]) for k in flat_reference)
    assert load_feature_extractor(tmp_path / "out").mean == pytest.approx(-6.845978)


def test_check_fails_beyond_tolerance(script, hf_dir, tmp_path, capsys):
    # The end-to-end difference is small but not zero (features differ by ~1e-5 from torch's).
    assert script.main([str(hf_dir), str(tmp_path / "out"), "--check", "--tolerance", "0"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_check_from_an_ast_jax_directory(script, hf_dir, tmp_path, capsys):
    script.main([str(hf_dir), str(tmp_path / "first")])
    assert script.main([str(tmp_path / "first"), str(tmp_path / "second"), "--check"]) == 0
    assert "OK" in capsys.readouterr().out
