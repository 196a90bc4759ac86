"""Attention maps: per-layer probabilities against transformers' eager attentions, rollout against a
loop restatement, the heatmap layout, and `ast-jax explain`."""

from __future__ import annotations

import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile
import torch

from ast_jax import ASTForAudioClassification, load_pretrained
from ast_jax.model.attention_maps import attention_rollout, explain, rollout_heatmap

# Bar for attention probabilities (docs/parity.md has the test tolerances); both sides compute a
# float32 softmax of the same float32 scores, so differences are a few ulps of values in [0, 1]
# (measured 9e-9).
ATTENTION_ATOL = 1e-5
# The explicit path and the fused kernel differ only in float32 summation order.
FAST_PATH_ATOL = 1e-5


@pytest.fixture(scope="module")
def hf_pair(hf_model, save_hf, tmp_path_factory):
    model = hf_model(seed=3)
    config, params = load_pretrained(save_hf(model, tmp_path_factory.mktemp("hf")))
    return model, config, params


def test_attentions_match_transformers_eager(hf_pair, random_features):
    model, config, params = hf_pair
    x = random_features(config, batch=2)
    with torch.no_grad():
        expected = [
            a.numpy() for a in model(torch.from_numpy(x), output_attentions=True).attentions
        ]
    with jax.default_matmul_precision("float32"):
        out = ASTForAudioClassification(config).apply({"params": params}, x, output_attentions=True)
    assert len(out.attentions) == config.num_hidden_layers == len(expected)
    worst = max(float(np.abs(a - e).max()) for a, e in zip(out.attentions, expected, strict=True))
    print(f"max |attention diff| vs transformers eager: {worst:.3e}")
    assert out.attentions[0].shape == (
        2,
        config.num_attention_heads,
        config.seq_len,
        config.seq_len,
    )
    assert worst <= ATTENTION_ATOL


def test_attention_path_keeps_the_logits(hf_pair, random_features):
    _, config, params = hf_pair
    x = random_features(config, batch=2)
    model = ASTForAudioClassification(config)
    with jax.default_matmul_precision("float32"):
        fused = model.apply({"params": params}, x)
        explicit = model.apply({"params": params}, x, output_attentions=True)
    assert fused.attentions is None
    np.testing.assert_allclose(explicit.logits, fused.logits, rtol=0, atol=FAST_PATH_ATOL)


def _rollout_loop(attentions: np.ndarray) -> np.ndarray:
    """Abnar & Zuidema restated per example and layer in float64."""
    layers, batch, _, tokens, _ = attentions.shape
    result = np.zeros((batch, tokens, tokens))
    for b in range(batch):
        rollout = np.eye(tokens)
        for layer in range(layers):
            a = attentions[layer, b].astype(np.float64).mean(axis=0) + np.eye(tokens)
            a /= a.sum(axis=1, keepdims=True)
            rollout = a @ rollout
        result[b] = rollout
    return result


def test_rollout_matches_a_loop():
    logits = np.random.default_rng(0).standard_normal((3, 2, 4, 7, 7))
    attentions = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    rollout = np.asarray(attention_rollout(list(attentions)))
    np.testing.assert_allclose(rollout, _rollout_loop(attentions), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rollout.sum(-1), 1.0, rtol=1e-5)


def test_heatmap_puts_a_patch_at_its_frequency_row_and_time_column(tiny_config):
    """cls and dist attend only to patch (fi, ti) = (3, 7): the map peaks there."""
    fi, ti = 3, 7
    n = tiny_config.seq_len
    attentions = np.zeros((1, 1, 1, n, n), np.float32)
    attentions[..., :, :] = np.eye(n)
    attentions[..., :2, :] = 0
    attentions[..., :2, 2 + fi * tiny_config.t_dim + ti] = 1
    heatmap = np.asarray(rollout_heatmap(attention_rollout(attentions), tiny_config))
    assert heatmap.shape == (1, tiny_config.f_dim, tiny_config.t_dim)
    assert np.unravel_index(heatmap[0].argmax(), heatmap[0].shape) == (fi, ti)
    np.testing.assert_allclose(heatmap.sum(), 1.0, rtol=1e-6)


def test_explain_returns_logits_attentions_and_heatmap(hf_pair, random_features):
    _, config, params = hf_pair
    x = random_features(config, batch=2)
    out = jax.jit(explain, static_argnames="config")(params, config, x)
    shape = (
        config.num_hidden_layers,
        2,
        config.num_attention_heads,
        config.seq_len,
        config.seq_len,
    )
    assert out["attentions"].shape == shape
    assert out["heatmap"].shape == (2, config.f_dim, config.t_dim)
    assert out["logits"].shape == (2, config.num_labels)


def test_errors_name_the_shapes(tiny_config):
    with pytest.raises(ValueError, match=r"attentions must be L >= 1 arrays \(B, H, N, N\)"):
        attention_rollout(np.zeros((2, 1, 1, 3, 4)))
    with pytest.raises(ValueError, match=rf"rollout must be \(B, {tiny_config.seq_len}"):
        rollout_heatmap(np.zeros((1, 5, 5)), tiny_config)


def test_cli_explain_draws_a_png(tiny_checkpoint, tone, tmp_path):
    audio = tmp_path / "tone.wav"
    soundfile.write(audio, tone(440.0, 0.8), 16000)
    png = tmp_path / "map.png"
    command = [
        sys.executable,
        "-m",
        "ast_jax.cli",
        "explain",
        str(tiny_checkpoint),
        str(audio),
        "-o",
        str(png),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "alpha" in result.stdout or "beta" in result.stdout
