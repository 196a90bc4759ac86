"""AudioClassifier: parity with the manual path, windows and timestamps, embeddings, one compilation
per output kind, bounded memory on a long file, and bad inputs."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
import safetensors
import soundfile

from ast_jax import (
    ASTConfig,
    ASTForAudioClassification,
    ASTModel,
    AudioClassifier,
    Failure,
    default_activation,
    save_embeddings,
)

RATE = 16000
# Rows batched with different neighbours go through XLA's CPU matmuls in different blockings;
# float32 results of the tiny model then differ in the last bits (seen: 3e-8).
PARITY_ATOL = 1e-6
# jax.monitoring event recorded once per XLA compilation.
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
SWITCH_SECONDS = 4.0  # tone A before, tone B after
WINDOW_SECONDS = 1.28  # the tiny model's 128 frames


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint):
    return AudioClassifier.from_pretrained(tiny_checkpoint, batch_size=4)


@pytest.fixture(scope="module")
def logits_fn(tiny_config):
    model = ASTForAudioClassification(tiny_config)
    return jax.jit(lambda params, x: model.apply({"params": params}, x).logits)


@pytest.fixture(scope="module")
def switching_file(tone, tmp_path_factory):
    """8 s: a 440 Hz tone, then from 4 s a 2500 Hz tone, as a float WAV."""
    signal = np.concatenate([tone(440.0, SWITCH_SECONDS), tone(2500.0, 8.0 - SWITCH_SECONDS)])
    path = tmp_path_factory.mktemp("audio") / "switch.wav"
    soundfile.write(path, signal, RATE, subtype="FLOAT")
    return path, signal


def _clips(tone) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    noise = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000, 4000, 20720)]
    return [*noise, tone(1000.0, 0.7)]


def test_pipeline_equals_extractor_plus_jitted_model(
    tiny_config, tiny_extractor, tiny_params, tone, classifier, logits_fn
):
    clips = _clips(tone)  # all within one 1.28 s window
    results = classifier.classify(clips)
    values = tiny_extractor(clips, sampling_rate=RATE)["input_values"]  # (4, 128, 128)
    expected = jax.nn.softmax(logits_fn(tiny_params(), values), axis=-1)
    got = np.stack([result.scores for result in results])
    np.testing.assert_allclose(got, expected, atol=PARITY_ATOL)
    np.testing.assert_allclose(classifier.predict(values), expected, atol=PARITY_ATOL)
    for result, clip in zip(results, clips, strict=True):
        assert result.window_scores.shape == (1, tiny_config.num_labels)
        np.testing.assert_allclose(result.window_times, [[0.0, clip.size / RATE]])
        assert result.duration == clip.size / RATE
    top = results[0].top_k(2)
    order = np.argsort(-got[0])
    assert [label for label, _ in top] == [tiny_config.labels[i] for i in order[:2]]
    assert top[0][1] == pytest.approx(got[0, order[0]])


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (ASTConfig(labels=tuple("ab")), "softmax"),
        (ASTConfig(labels=[f"c{i}" for i in range(527)]), "sigmoid"),
        (ASTConfig(labels=tuple("ab"), problem_type="multi_label_classification"), "sigmoid"),
        (ASTConfig(labels=tuple("ab"), problem_type="single_label_classification"), "softmax"),
        (
            ASTConfig(
                labels=[f"c{i}" for i in range(527)], problem_type="single_label_classification"
            ),
            "softmax",
        ),
        (ASTConfig(labels=("value",), problem_type="regression"), "none"),
    ],
)
def test_default_activation(config, expected):
    assert default_activation(config) == expected


@pytest.mark.parametrize(
    ("activation", "function"),
    [("sigmoid", jax.nn.sigmoid), ("none", lambda x: x)],
)
def test_activation_can_be_overridden(
    tiny_config, tiny_extractor, tiny_params, tone, activation, function, logits_fn
):
    classifier = AudioClassifier(tiny_config, tiny_params(), tiny_extractor, activation=activation)
    clip = _clips(tone)[0]
    expected = function(
        logits_fn(tiny_params(), tiny_extractor(clip, sampling_rate=RATE)["input_values"])
    )
    np.testing.assert_allclose(classifier.classify([clip])[0].scores, expected[0], atol=PARITY_ATOL)


def test_every_batch_reuses_one_compilation(tone, classifier):
    compiles = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == COMPILE_EVENT:
            compiles.append(event)

    classifier.classify(_clips(tone)[:1])  # compile the classify step
    classifier.embed(_clips(tone)[:1])  # and the pooled-embedding step
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        # 1 window, 9 windows (3 batches of 4, the last padded), 2 inputs sharing one batch.
        classifier.classify([tone(300.0, 0.5)])
        classifier.classify([tone(300.0, 11.0)])
        classifier.classify([tone(300.0, 2.0), tone(600.0, 0.3)])
        classifier.embed([tone(300.0, 6.0), tone(300.0, 0.5)])
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []


def test_long_audio_windows_follow_the_signal(
    tiny_config, tiny_extractor, tiny_params, classifier, switching_file
):
    path, signal = switching_file
    result = classifier.classify([path])[0]
    # 8 s = 798 frames: six full 128-frame windows from 0 s every 1.28 s, then a 30-frame tail.
    starts = np.arange(7) * WINDOW_SECONDS
    # A window stands for 128 shifts of 10 ms (1.28 s); the tail window runs to the end.
    ends = np.append(starts[:-1] + WINDOW_SECONDS, 8.0)
    np.testing.assert_allclose(result.window_times, np.stack([starts, ends], axis=1), atol=1e-12)
    assert result.duration == 8.0
    # Each window's scores are the scores of the samples its 128 frames read, cut by hand.
    read = (127 * 160 + 400) / RATE
    segments = [signal[round(a * RATE) : round((a + read) * RATE)] for a in starts]
    manual = classifier.predict(tiny_extractor(segments, sampling_rate=RATE)["input_values"])
    np.testing.assert_allclose(result.window_scores, manual, atol=PARITY_ATOL)
    np.testing.assert_allclose(result.scores, manual.mean(axis=0), atol=PARITY_ATOL)
    maximum = AudioClassifier(tiny_config, tiny_params(), tiny_extractor, aggregate="max")
    np.testing.assert_allclose(
        maximum.classify([path])[0].scores, manual.max(axis=0), atol=PARITY_ATOL
    )


def test_window_embeddings_switch_with_the_tone(classifier, switching_file):
    path, _ = switching_file
    pooled = classifier.embed([path])[0].window_pooled  # (7, D)
    # Windows 0-2 end before 4 s (tone A), windows 4-5 start after it (tone B); 3 straddles the
    # switch and 6 is a padded tail.
    tone_a, tone_b = pooled[[0, 1, 2]], pooled[[4, 5]]
    within = max(np.ptp(tone_a, axis=0).max(), np.ptp(tone_b, axis=0).max())
    between = np.abs(tone_a.mean(axis=0) - tone_b.mean(axis=0)).max()
    assert within < between / 10


def test_overlapping_windows(tiny_checkpoint, tone):
    classifier = AudioClassifier.from_pretrained(tiny_checkpoint, window=1.0, hop=0.25)
    result = classifier.classify([tone(500.0, 3.0)])[0]
    # 298 frames; 100-frame windows every 25 frames: starts 0..200 frames, the last reaching 298.
    np.testing.assert_allclose(result.window_times[:, 0], np.arange(9) * 0.25)
    # Windows stand for one 10-ms shift per frame (1 s), the last one runs to the end.
    np.testing.assert_allclose(result.window_times[:, 1], [*(np.arange(8) * 0.25 + 1.0), 3.0])
    assert classifier.count_windows(tone(500.0, 3.0)) == 9


def test_embeddings_equal_the_backbone_outputs(
    tiny_config, tiny_extractor, tiny_params, tone, classifier
):
    clips = [tone(700.0, 1.0), tone(700.0, 2.0)]
    embeddings = classifier.embed(clips, tokens=True, hidden_states=True)
    values = tiny_extractor(
        [clips[0], clips[1][: 127 * 160 + 400], clips[1][20480:]], sampling_rate=RATE
    )
    out = ASTModel(tiny_config).apply(
        {"params": tiny_params()["backbone"]}, values["input_values"], output_hidden_states=True
    )
    layers = np.stack(out.hidden_states, axis=1)  # (3, L + 1, N, D)
    first, second = embeddings
    assert first.pooled.shape == (tiny_config.hidden_size,)
    assert second.window_pooled.shape == (2, tiny_config.hidden_size)
    assert second.last_hidden_state.shape == (2, tiny_config.seq_len, tiny_config.hidden_size)
    assert second.hidden_states.shape == (2, 3, tiny_config.seq_len, tiny_config.hidden_size)
    np.testing.assert_allclose(first.pooled, out.pooler_output[0], atol=PARITY_ATOL)
    np.testing.assert_allclose(second.pooled, out.pooler_output[1:].mean(axis=0), atol=PARITY_ATOL)
    np.testing.assert_allclose(
        second.last_hidden_state, out.last_hidden_state[1:], atol=PARITY_ATOL
    )
    np.testing.assert_allclose(second.hidden_states, layers[1:], atol=PARITY_ATOL)


def test_backbone_checkpoint_embeds_but_cannot_classify(
    tiny_config, tiny_extractor, tiny_params, tone
):
    classifier = AudioClassifier(tiny_config, tiny_params()["backbone"], tiny_extractor)
    assert classifier.embed([tone(440.0, 1.0)])[0].pooled.shape == (tiny_config.hidden_size,)
    with pytest.raises(ValueError, match="no classifier head"):
        classifier.classify([tone(440.0, 1.0)])


def test_save_embeddings_formats(tone, classifier, tmp_path):
    embeddings = classifier.embed([tone(440.0, 1.0), tone(440.0, 3.0)], tokens=True)
    pooled = np.stack([e.pooled for e in embeddings])
    save_embeddings(tmp_path / "e.npy", [*classifier.embed([tone(440.0, 1.0), tone(440.0, 3.0)])])
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), pooled)
    assert (tmp_path / "e.npy.txt").read_text().splitlines() == ["array[0]", "array[1]"]
    save_embeddings(tmp_path / "e.npz", embeddings)
    with np.load(tmp_path / "e.npz") as archive:
        assert list(archive["files"]) == ["array[0]", "array[1]"]
        np.testing.assert_array_equal(archive["pooled"], pooled)
        np.testing.assert_array_equal(
            archive["last_hidden_state/1"], embeddings[1].last_hidden_state
        )
        np.testing.assert_array_equal(archive["window_times/1"], embeddings[1].window_times)
    save_embeddings(tmp_path / "e.safetensors", embeddings)
    with safetensors.safe_open(tmp_path / "e.safetensors", "np") as file:
        assert json.loads(file.metadata()["files"]) == ["array[0]", "array[1]"]
        np.testing.assert_array_equal(file.get_tensor("pooled"), pooled)
        np.testing.assert_array_equal(
            file.get_tensor("window_pooled/1"), embeddings[1].window_pooled
        )
    with pytest.raises(ValueError, match="pooled embeddings only"):
        save_embeddings(tmp_path / "tokens.npy", embeddings)
    with pytest.raises(ValueError, match="unknown embedding format"):
        save_embeddings(tmp_path / "e.txt", embeddings)


def _unsupported_wav(path: Path) -> Path:
    """A WAV whose format tag (0x7777) names no codec libsndfile knows."""
    data = np.zeros(1600, np.int16).tobytes()
    fmt = struct.pack("<HHIIHH", 0x7777, 1, RATE, 2 * RATE, 2, 16)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    riff += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)
    return path


def test_bad_inputs_fail_one_by_one(tone, classifier, tmp_path):
    good = tmp_path / "good.wav"
    soundfile.write(good, tone(440.0, 1.0), RATE)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF0000WAVEfmt garbage")
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), RATE)
    nan = tone(440.0, 1.0)
    nan[100] = np.nan
    inputs = [
        tmp_path / "missing.wav",
        good,
        corrupt,
        empty,
        _unsupported_wav(tmp_path / "unsupported.wav"),
        (tone(440.0, 1.0) * 32767).astype(np.int16),
        tone(440.0, 0.01),
        nan,
        np.zeros((2, 16000), np.float32),
    ]
    results = list(classifier.classify_iter(inputs))
    messages = [str(r.error) if isinstance(r, Failure) else "ok" for r in results]
    expected = [
        "not found",
        "ok",
        "cannot decode",
        "no audio samples",
        "cannot decode",
        "expected float audio",
        "shorter than one 25 ms frame",
        "NaN or inf",
        "expected non-empty mono audio",
    ]
    assert len(messages) == len(expected)
    for message, fragment in zip(messages, expected, strict=True):
        assert fragment in message
    assert results[1].source == str(good)
    with pytest.raises(FileNotFoundError, match=r"missing\.wav"):
        classifier.classify([good, tmp_path / "missing.wav"])


# Peak RSS growth allowed while classifying 25 min of audio in batches of 8 windows. Streaming
# holds one 10 s block, a batch of windows and the float64 temporaries of its features: seen
# 15-24 MB, the same for a 5-min file. Decoding the whole file (the control, load_audio) adds
# about 180 MB (96 MB of float32 samples plus soundfile's (S, 1) read buffer).
LONG_FILE_MINUTES = 25
RSS_GROWTH_BOUND_MB = 48

# Peak RSS is Linux's VmHWM, reset to the current RSS through /proc/self/clear_refs before each
# measured step. getrusage's ru_maxrss cannot be reset, and a child inherits its parent's peak
# across fork and exec, so under pytest it would report pytest's own peak.
_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ast_jax import AudioClassifier, load_audio

    def status_mb(key):
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith(key + ":"))
        return int(line.split()[1]) / 1024  # kB

    def growth_mb(step):
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # peak := current
        before = status_mb("VmRSS")
        result = step()
        return status_mb("VmHWM") - before, result

    classifier = AudioClassifier.from_pretrained(sys.argv[1], batch_size=8)
    # Compile and fill the feature workspaces with full batches first: fixed costs, not growth.
    classifier.classify([np.zeros(60 * 16000, np.float32)])
    growth, result = growth_mb(lambda: classifier.classify([sys.argv[2]])[0])
    control, _ = growth_mb(lambda: load_audio(sys.argv[2]))
    print(json.dumps({"growth_mb": growth, "control_mb": control,
                      "windows": len(result.window_times), "duration": result.duration}))
    """
)


def _write_long_file(path: Path, minutes: int, block: np.ndarray) -> None:
    """Writes ``minutes`` of 16-bit audio, the one-minute ``block`` over and over (never all in
    memory)."""
    with soundfile.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as file:
        for _ in range(minutes):
            file.write(block)


def test_long_file_streams_in_bounded_memory(tiny_checkpoint, tone, tmp_path):
    path = tmp_path / "long.wav"
    _write_long_file(path, LONG_FILE_MINUTES, tone(440.0, 60, RATE, amplitude=0.3))
    command = [sys.executable, "-c", _MEMORY_SCRIPT, str(tiny_checkpoint), str(path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["duration"] == LONG_FILE_MINUTES * 60
    assert report["windows"] == -(-(LONG_FILE_MINUTES * 6000 - 2 - 128) // 128) + 1
    assert report["growth_mb"] < RSS_GROWTH_BOUND_MB, report
    assert report["control_mb"] > RSS_GROWTH_BOUND_MB, report
