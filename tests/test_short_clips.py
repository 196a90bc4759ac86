"""Short-clip inference: `AudioClassifier(length_bucket=...)` runs short windows unpadded at
bucketed lengths with the first t_dim position columns, and equals that computation done by hand."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from ast_jax import ASTForAudioClassification, AudioClassifier, load_pretrained
from ast_jax.model.positions import adapt_params

RATE = 16000
# Rows batched with different neighbours go through XLA's CPU matmuls in different blockings;
# float32 results of the tiny model then differ in the last bits (as in test_inference).
PARITY_ATOL = 1e-6
# The CLI prints scores rounded to 6 decimals.
PRINTED_ATOL = 1e-6
BUCKET = 4  # patch columns: the tiny model's 12 columns give lengths 46, 86 and 128 frames


@pytest.fixture(scope="module")
def checkpoint(tiny_config, tiny_params, save_tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint with a random position table (init leaves it zero, which would make
    every choice of position rows look right)."""
    params = tiny_params()
    shape = (1, tiny_config.seq_len, tiny_config.hidden_size)
    table = np.random.default_rng(0).standard_normal(shape)
    params["backbone"]["embeddings"]["position_embeddings"] = table.astype(np.float32)
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), params)


@pytest.fixture(scope="module")
def short(checkpoint):
    return AudioClassifier.from_pretrained(checkpoint, batch_size=2, length_bucket=BUCKET)


@pytest.fixture(scope="module")
def padded(checkpoint):
    return AudioClassifier.from_pretrained(checkpoint, batch_size=2)


def _by_hand(checkpoint, extractor, clip: np.ndarray, frames: int) -> np.ndarray:
    """Softmax scores of the model run at `frames` frames with prefix positions."""
    config, params = load_pretrained(checkpoint)
    target = dataclasses.replace(config, max_length=frames)
    adapted = adapt_params(params, config, target, rule="prefix")
    x = extractor(clip, sampling_rate=RATE)["input_values"][:, :frames]  # (1, T', F)
    logits = ASTForAudioClassification(target).apply({"params": adapted}, x).logits
    return np.asarray(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))[0]


@pytest.mark.parametrize("seconds, frames", [(0.4, 46), (0.5, 86)])  # 38 and 48 frames of audio
def test_short_clip_equals_the_unpadded_model_by_hand(
    tiny_extractor, tone, checkpoint, short, seconds, frames
):
    clip = tone(440.0, seconds)
    result = short.classify([clip])[0]
    np.testing.assert_allclose(
        result.scores, _by_hand(checkpoint, tiny_extractor, clip, frames), rtol=0, atol=PARITY_ATOL
    )


def test_clip_needing_every_column_runs_padded(tone, short, padded):
    clip = tone(300.0, 1.15)  # 113 frames: columns 0..11, all 12
    np.testing.assert_allclose(
        short.classify([clip])[0].scores, padded.classify([clip])[0].scores, atol=PARITY_ATOL
    )


def test_mixed_lengths_keep_order_and_per_clip_results(tone, short):
    clips = [tone(440.0, 0.4), tone(880.0, 1.0), tone(220.0, 0.45), tone(660.0, 0.3)]
    together = short.classify(clips)
    for clip, result in zip(clips, together, strict=True):
        alone = short.classify([clip])[0]
        np.testing.assert_allclose(result.scores, alone.scores, rtol=0, atol=PARITY_ATOL)
        assert result.duration == pytest.approx(clip.size / RATE)


def test_windows_of_a_long_input_share_the_bucket(tiny_config, tone, checkpoint, short):
    """0.5 s windows (50 frames) run at 86 frames; the shorter tail window too."""
    windowed = AudioClassifier.from_pretrained(
        checkpoint, batch_size=2, window=0.5, length_bucket=BUCKET
    )
    clip = tone(440.0, 1.7)
    result = windowed.embed([clip], tokens=True)[0]
    assert result.window_times.shape == (4, 2)
    assert result.last_hidden_state.shape == (4, 2 + tiny_config.f_dim * 8, tiny_config.hidden_size)


def test_length_bucket_is_validated(checkpoint):
    with pytest.raises(ValueError, match="length_bucket must be None or an int >= 1, got 0"):
        AudioClassifier.from_pretrained(checkpoint, length_bucket=0)


def test_cli_length_bucket(tone, checkpoint, short, tmp_path):
    clip = tone(440.0, 0.4)
    audio = tmp_path / "clip.wav"
    soundfile.write(audio, clip, RATE, subtype="FLOAT")
    command = [sys.executable, "-m", "ast_jax.cli", "classify", str(checkpoint), str(audio)]
    command += ["--length-bucket", str(BUCKET), "--format", "json", "--top-k", "5", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    printed = {e["label"]: e["score"] for e in json.loads(result.stdout)[0]["top"]}
    expected = dict(zip(short.labels, short.classify([clip])[0].scores, strict=True))
    for label, score in printed.items():
        assert score == pytest.approx(expected[label], abs=PRINTED_ATOL + PARITY_ATOL)
