"""Audio file reading: scaling, downmixing, resampling and errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from ast_jax.audio import load_audio


def _tone(rate: int, seconds: float = 1.0, frequency: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def test_int16_wav_is_scaled_to_unit_range(tmp_path):
    path = tmp_path / "pcm.wav"
    pcm = np.array([0, 16384, -32768, 32767], np.int16)
    soundfile.write(path, np.tile(pcm, 200), 16000, subtype="PCM_16")
    waveform = load_audio(path)
    assert waveform.dtype == np.float32
    np.testing.assert_array_equal(waveform[:4], pcm / 32768)


def test_stereo_is_averaged_to_mono(tmp_path):
    path = tmp_path / "stereo.flac"
    left, right = _tone(16000), _tone(16000, frequency=1000.0)
    soundfile.write(path, np.stack([left, right], axis=1), 16000, subtype="PCM_24")
    # FLAC at 24 bits keeps about 1e-7 of full scale.
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-6)


def test_other_rates_are_resampled(tmp_path):
    path = tmp_path / "tone44.wav"
    soundfile.write(path, _tone(44100, seconds=2.0), 44100, subtype="FLOAT")
    waveform = load_audio(path, sampling_rate=16000)
    assert waveform.shape == (32000,)
    # A 440 Hz tone stays a 440 Hz tone of the same amplitude (edges excluded: filter transients).
    np.testing.assert_allclose(
        waveform[1000:-1000], _tone(16000, seconds=2.0)[1000:-1000], atol=1e-3
    )


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF0000WAVEfmt garbage")
    with pytest.raises(ValueError, match="cannot decode"):
        load_audio(corrupt)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(ValueError, match="no audio samples"):
        load_audio(empty)
