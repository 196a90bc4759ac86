"""Audio file reading: scaling, downmixing, resampling and errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from ast_jax.frontend.audio import audio_info, find_audio, load_audio, stream_audio


def test_int16_wav_is_scaled_to_unit_range(tmp_path):
    path = tmp_path / "pcm.wav"
    pcm = np.array([0, 16384, -32768, 32767], np.int16)
    soundfile.write(path, np.tile(pcm, 200), 16000, subtype="PCM_16")
    waveform = load_audio(path)
    assert waveform.dtype == np.float32
    np.testing.assert_array_equal(waveform[:4], pcm / 32768)


def test_stereo_is_averaged_to_mono(tone, tmp_path):
    path = tmp_path / "stereo.flac"
    left, right = tone(440.0, 1.0, 16000), tone(1000.0, 1.0, 16000)
    soundfile.write(path, np.stack([left, right], axis=1), 16000, subtype="PCM_24")
    # FLAC at 24 bits keeps about 1e-7 of full scale.
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-6)


def test_other_rates_are_resampled(tone, tmp_path):
    path = tmp_path / "tone44.wav"
    soundfile.write(path, tone(440.0, 2.0, 44100), 44100, subtype="FLOAT")
    waveform = load_audio(path, sampling_rate=16000)
    assert waveform.shape == (32000,)
    # A 440 Hz tone stays a 440 Hz tone of the same amplitude (edges excluded: filter transients).
    np.testing.assert_allclose(waveform[1000:-1000], tone(440.0, 2.0, 16000)[1000:-1000], atol=1e-3)


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


# soxr's streaming resampler runs the same filter as its one-shot call: bit-identical results with
# the installed soxr; the tolerance leaves room for a different internal block split.
STREAM_RESAMPLE_ATOL = 1e-6


def _write_stereo(tone, path, rate: int, seconds: float) -> np.ndarray:
    left, right = tone(440.0, seconds, rate), tone(1000.0, seconds, rate)
    soundfile.write(path, np.stack([left, right], axis=1), rate, subtype="FLOAT")
    return (left + right) / 2


def test_stream_equals_load_at_the_native_rate(tone, tmp_path):
    path = tmp_path / "stereo.wav"
    mono = _write_stereo(tone, path, 16000, 2.5)
    blocks = list(stream_audio(path, 16000, block_seconds=0.3))
    assert len(blocks) == 9 and all(block.dtype == np.float32 for block in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path))
    np.testing.assert_allclose(np.concatenate(blocks), mono, atol=1e-7)


def test_stream_resamples_like_load(tone, tmp_path):
    path = tmp_path / "tone44.wav"
    _write_stereo(tone, path, 44100, 3.0)
    streamed = np.concatenate(list(stream_audio(path, 16000, block_seconds=0.25)))
    loaded = load_audio(path, 16000)
    assert streamed.shape == loaded.shape == (48000,)
    np.testing.assert_allclose(streamed, loaded, atol=STREAM_RESAMPLE_ATOL)


def test_stream_and_info_errors(tone, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        next(stream_audio(tmp_path / "missing.wav"))
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(100))
    with pytest.raises(ValueError, match="cannot decode"):
        next(stream_audio(corrupt))
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(ValueError, match="no audio samples"):
        audio_info(empty)
    info = audio_info(_write_and_return(tone, tmp_path / "x.wav", 8000, 1.5))
    assert (info.sampling_rate, info.channels, info.num_samples, info.duration) == (
        8000,
        1,
        12000,
        1.5,
    )


def _write_and_return(tone, path, rate: int, seconds: float):
    soundfile.write(path, tone(440.0, seconds, rate), rate)
    return path


def test_find_audio_walks_directories(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.wav", "a.FLAC", "sub/c.ogg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert find_audio(tmp_path) == [tmp_path / "a.FLAC", tmp_path / "b.wav", tmp_path / "sub/c.ogg"]
    assert find_audio(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files in directory"):
        find_audio(tmp_path / "empty")


def test_find_audio_follows_linked_folders_without_looping(tmp_path):
    data = tmp_path / "data"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.wav").write_bytes(b"")
    data.mkdir()
    (data / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (data / "loop").symlink_to(data, target_is_directory=True)  # must not recurse forever
    assert find_audio(data) == [data / "linked" / "x.wav"]
