"""Kaldi fbank and AST feature extractor: parity with torchaudio's own outputs (fixtures) and with
transformers' ASTFeatureExtractor (live), batch invariance, config round trips, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from ast_jax.frontend import kaldi
from ast_jax.frontend.extractor import PRESETS, FeatureExtractor
from ast_jax.frontend.kaldi import FbankOptions, fbank, fbank_batch

# Tolerances (docs/numerics.md): log-fbank within 1e-3 of torchaudio, extractor output within 1e-4
# (HF's own bar). Bands far below a frame's peak, where torchaudio's float32 FFT itself is off by
# more, are compared by energy instead: see `assert_close_in_resolvable_range` in conftest.py.
LOG_TOL = 1e-3
EXTRACTOR_TOL = 1e-4
# The energy column is the log of a 400-term float32 sum in torchaudio: ~sqrt(400) * 2**-23.
ENERGY_TOL = 1e-5
# Batched and per-clip results may differ only by BLAS summation order in the mel product.
BATCH_TOL = 1e-6


def test_fbank_matches_torchaudio(
    fbank_case, fbank_reference, reference_wave, assert_close_in_resolvable_range
):
    name = str(fbank_reference[f"c{fbank_case}_name"])
    options = json.loads(str(fbank_reference[f"c{fbank_case}_kwargs"]))
    expected = fbank_reference[f"c{fbank_case}_fbank"]
    ours = fbank(reference_wave(name.split("/")[0]), **options)
    assert ours.dtype == np.float32
    assert ours.shape == expected.shape, name
    mel = slice(None)
    if options.get("use_energy"):
        energy_column = -1 if options.get("htk_compat") else 0
        np.testing.assert_allclose(
            ours[:, energy_column], expected[:, energy_column], atol=ENERGY_TOL, rtol=0
        )
        mel = slice(0, -1) if options.get("htk_compat") else slice(1, None)
    log_domain = options.get("use_log_fbank", True)
    assert_close_in_resolvable_range(ours[:, mel], expected[:, mel], log_domain, LOG_TOL)


def test_feature_extractor_matches_torchaudio_pipeline(
    extractor_case, fbank_reference, reference_wave, assert_close_in_resolvable_range
):
    config = json.loads(str(fbank_reference[f"{extractor_case}_cfg"]))
    expected = fbank_reference[f"{extractor_case}_values"]
    extractor = FeatureExtractor(**config)
    output = extractor(
        reference_wave(extractor_case.split("_", 1)[1]), sampling_rate=16000, return_num_frames=True
    )
    values, count = output["input_values"][0], output["num_frames"][0]
    assert values.shape == expected.shape and values.dtype == np.float32
    # Padded rows: (0 - mean) / (2 std), computed identically in float32.
    np.testing.assert_array_equal(values[count:], expected[count:])
    # Real rows: undo the normalisation to compare band energies.
    scale = 2 * config["std"]
    shift = config["mean"] / scale
    assert_close_in_resolvable_range(
        values[:count] + shift, expected[:count] + shift, True, EXTRACTOR_TOL, scale=scale
    )


# ----------------------------------------------------------------------------------------------
# Live parity with transformers' ASTFeatureExtractor. Without torchaudio installed it runs its
# float64 NumPy path. It differs from torchaudio (and us) in two constructions only: a float64
# window and a float64 linspace mel bank, where torchaudio builds both in float32. Those change
# bands far below a frame's peak (window rounding leaks ~1e-7 of the peak), so the default
# comparison uses the same resolvable-range rule as the torchaudio fixtures; with HF's window and
# bank swapped in, every value must agree to float32 rounding.
HF_CONSTRUCTION_TOL = 1e-6


@pytest.fixture(scope="module")
def signals(reference_wave) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    t = np.arange(16000 * 12) / 16000
    chirp = 0.5 * np.sin(2 * np.pi * (50 * t + 300 * t**2))
    clicks = np.zeros_like(t)
    clicks[::4000] = 0.9
    return {
        "noisy_chirp_12s": (chirp + 0.01 * rng.standard_normal(t.size)).astype(np.float32),
        "clicks_3s": (clicks[: 3 * 16000] + 1e-3 * rng.standard_normal(3 * 16000)).astype(
            np.float32
        ),
        "noise_1s": (0.1 * rng.standard_normal(16000)).astype(np.float32),
        "full_scale_square": np.sign(np.sin(2 * np.pi * 440 * t[:20000])).astype(np.float32),
        "one_frame": (0.3 * rng.standard_normal(400)).astype(np.float32),
        "speech": reference_wave("yes"),
    }


@pytest.fixture(scope="module")
def hf_extractor_class():
    from transformers import ASTFeatureExtractor
    from transformers.utils import is_speech_available

    # The comparison is with HF's own NumPy implementation, not with torchaudio through HF.
    assert not is_speech_available(), "torchaudio is installed: HF would not use its NumPy path"
    return ASTFeatureExtractor


def _bank_log_bound(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Per band, the largest change in log energy that swapping mel bank ``ours`` for ``theirs``
    can cause: a ratio of positive weighted sums lies between the extreme weight ratios."""
    np.testing.assert_array_equal(ours > 0, theirs > 0)  # same support: nonzero in the same bins
    ratio = np.divide(theirs, ours, out=np.ones_like(theirs), where=ours > 0)
    return np.maximum(np.abs(np.log(ratio.max(axis=1))), np.abs(np.log(ratio.min(axis=1))))


@pytest.mark.parametrize("preset", ["audioset", "esc50", "speech_commands"])
def test_feature_extractor_matches_transformers(
    hf_extractor_class, signals, assert_close_in_resolvable_range, preset
):
    ours = FeatureExtractor.from_preset(preset)
    theirs = hf_extractor_class(**PRESETS[preset])
    clips = list(signals.values())
    expected = theirs(clips, sampling_rate=16000, return_tensors="np")["input_values"]
    output = ours(clips, sampling_rate=16000, return_num_frames=True)
    actual, counts = output["input_values"], output["num_frames"]
    assert actual.shape == expected.shape and actual.dtype == np.float32
    scale, shift = 2 * ours.std, ours.mean / (2 * ours.std)
    # HF's float64 bank moves some bands by more than 1e-4 on its own (weights near a triangle's
    # edge differ by up to 2e-3 relative); allow exactly that, per band, on top of HF's bar.
    bank_bound = _bank_log_bound(
        kaldi.mel_banks(num_mel_bins=128, window_type="hanning").astype(np.float64),
        theirs.mel_filters.T,
    )
    tolerance = EXTRACTOR_TOL + bank_bound / scale  # (F,)
    assert bank_bound.max() < 3e-3
    for i, count in enumerate(counts):
        np.testing.assert_array_equal(actual[i, count:], expected[i, count:])
        assert_close_in_resolvable_range(
            actual[i, :count] + shift, expected[i, :count] + shift, True, tolerance, scale
        )


def test_feature_extractor_equals_transformers_given_its_constructions(
    hf_extractor_class, signals, monkeypatch
):
    theirs = hf_extractor_class()
    hf_window = np.hanning(400)  # HF's window_function(400, "hann", periodic=False)
    np.testing.assert_array_equal(hf_window, theirs.window)
    monkeypatch.setattr(kaldi, "_window", lambda *_: hf_window)
    hf_groups = kaldi._mel_groups(theirs.mel_filters.T.astype(np.float32))
    monkeypatch.setattr(kaldi, "_mel_groups_cached", lambda _: hf_groups)
    clips = list(signals.values())
    expected = theirs(clips, sampling_rate=16000, return_tensors="np")["input_values"]
    actual = FeatureExtractor()(clips, sampling_rate=16000)["input_values"]
    np.testing.assert_allclose(actual, expected, atol=HF_CONSTRUCTION_TOL, rtol=0)


def test_windows_equal_torch_float32_windows():
    import torch

    size = 400
    expected = {
        "hanning": torch.hann_window(size, periodic=False),
        "povey": torch.hann_window(size, periodic=False).pow(0.85),
        "hamming": torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46),
        "rectangular": torch.ones(size),
    }
    for window_type, window in expected.items():
        ours = kaldi._window(window_type, size, 0.42)
        assert ours.dtype == np.float32
        # Same float32 formula; cos may differ by an ulp between libms.
        np.testing.assert_allclose(ours, window.numpy(), atol=2e-7, rtol=0, err_msg=window_type)
    n = torch.arange(size, dtype=torch.float32)
    phase = 2 * np.pi / (size - 1)
    blackman = 0.42 - 0.5 * torch.cos(phase * n) + 0.08 * torch.cos(2 * phase * n)
    np.testing.assert_allclose(kaldi._window("blackman", size, 0.42), blackman.numpy(), atol=2e-7)


def test_feature_extractor_accepts_hf_input_forms(hf_extractor_class, signals):
    extractor = FeatureExtractor()
    clip = signals["noise_1s"]
    reference = hf_extractor_class()(clip, sampling_rate=16000, return_tensors="np")["input_values"]
    for form in (
        clip,
        clip.tolist(),
        [clip],
        [clip.tolist()],
        clip[None, :],
        clip.astype(np.float64),
    ):
        np.testing.assert_allclose(
            extractor(form, sampling_rate=16000)["input_values"],
            reference,
            atol=EXTRACTOR_TOL,
            rtol=0,
        )


# ----------------------------------------------------------------------------------------------
# Batching.


@pytest.mark.parametrize(
    "options",
    [
        {"window_type": "hanning", "num_mel_bins": 128},
        {"snip_edges": False, "use_energy": True, "num_mel_bins": 40},
        {"subtract_mean": True, "raw_energy": False, "use_energy": True, "htk_compat": True},
        {"use_log_fbank": False, "use_power": False, "window_type": "blackman"},
    ],
)
def test_batch_equals_loop(options):
    rng = np.random.default_rng(0)
    batch = (0.2 * rng.standard_normal((5, 7000))).astype(np.float32)
    batched = fbank_batch(batch, **options)
    looped = np.stack([fbank(clip, **options) for clip in batch])
    assert batched.shape == looped.shape
    np.testing.assert_allclose(batched, looped, atol=BATCH_TOL, rtol=BATCH_TOL)

    ragged = [batch[0, :400], batch[1], batch[2, :5123], batch[3, :3001]]
    for clip, features_of_clip in zip(ragged, fbank_batch(ragged, **options), strict=True):
        np.testing.assert_allclose(
            features_of_clip, fbank(clip, **options), atol=BATCH_TOL, rtol=BATCH_TOL
        )


def test_large_batch_spans_many_blocks():
    rng = np.random.default_rng(1)
    batch = (0.2 * rng.standard_normal((3, 16000 * 11))).astype(np.float32)  # 3 x 1098 frames
    batched = fbank_batch(batch, window_type="hanning", num_mel_bins=128)
    np.testing.assert_allclose(
        batched[2], fbank(batch[2], window_type="hanning", num_mel_bins=128), atol=BATCH_TOL
    )


def test_feature_extractor_batch_equals_single_clips(signals):
    extractor = FeatureExtractor(max_length=300)
    clips = [
        signals["noise_1s"],
        signals["clicks_3s"],
        signals["one_frame"],
        signals["noisy_chirp_12s"],
    ]
    output = extractor(clips, sampling_rate=16000, return_num_frames=True)
    np.testing.assert_array_equal(output["num_frames"], [98, 298, 1, 300])
    for i, clip in enumerate(clips):
        single = extractor(clip, sampling_rate=16000)["input_values"][0]
        np.testing.assert_allclose(output["input_values"][i], single, atol=BATCH_TOL)


def test_dither_is_reproducible_with_a_generator():
    silence = np.zeros(16000, dtype=np.float32)
    first = fbank(silence, dither=1.0, rng=np.random.default_rng(7))
    again = fbank(silence, dither=1.0, rng=np.random.default_rng(7))
    other = fbank(silence, dither=1.0, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 0.1
    # Unit-variance noise lifts silence far above the log floor (-15.94).
    assert first.min() > -10


# ----------------------------------------------------------------------------------------------
# Extractor semantics beyond the fixtures.


def test_padding_truncation_and_masks(signals):
    extractor = FeatureExtractor(max_length=100, return_attention_mask=True)
    clip = signals["noisy_chirp_12s"]
    long_output = extractor(clip, sampling_rate=16000, return_num_frames=True)
    full = fbank(clip, window_type="hanning", num_mel_bins=128)  # (1198, 128)
    expected = (full[:100] - np.float32(extractor.mean)) / np.float32(2 * extractor.std)
    np.testing.assert_allclose(long_output["input_values"][0], expected, atol=1e-6)
    assert long_output["num_frames"].tolist() == [100]
    assert long_output["attention_mask"].sum() == 100

    short_output = extractor(signals["one_frame"], sampling_rate=16000, return_num_frames=True)
    pad = (0.0 - extractor.mean) / (2 * extractor.std)
    np.testing.assert_allclose(short_output["input_values"][0, 1:], pad, rtol=1e-6)
    assert short_output["attention_mask"][0].tolist() == [1] + [0] * 99


def test_unnormalised_output_and_padding_value(signals):
    raw = FeatureExtractor(do_normalize=False, max_length=200, padding_value=-1.5)
    values = raw(signals["noise_1s"], sampling_rate=16000)["input_values"][0]
    np.testing.assert_allclose(
        values[:98], fbank(signals["noise_1s"], window_type="hanning", num_mel_bins=128)
    )
    assert np.all(values[98:] == -1.5)


def test_sampling_rate_checks(signals):
    extractor = FeatureExtractor()
    with pytest.raises(ValueError, match=r"16000 Hz.*44100 Hz"):
        extractor(signals["noise_1s"], sampling_rate=44100)
    with pytest.warns(UserWarning, match="sampling_rate"):
        extractor(signals["noise_1s"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extractor(signals["noise_1s"], sampling_rate=16000)


def test_presets_hold_published_statistics():
    assert FeatureExtractor() == FeatureExtractor.from_preset("audioset")
    esc = FeatureExtractor.from_preset("esc50")
    assert (esc.mean, esc.std, esc.max_length) == (-6.6268077, 5.358466, 512)
    speech = FeatureExtractor.from_preset("speech_commands", do_normalize=False)
    assert (speech.mean, speech.std, speech.max_length, speech.do_normalize) == (
        -6.845978,
        5.5654526,
        128,
        False,
    )
    with pytest.raises(ValueError, match="unknown preset"):
        FeatureExtractor.from_preset("librispeech")


def test_preprocessor_config_round_trip_with_transformers(tmp_path, hf_extractor_class):
    ours = FeatureExtractor.from_preset("speech_commands")
    ours.save_pretrained(tmp_path / "ours")
    assert FeatureExtractor.from_pretrained(tmp_path / "ours") == ours
    theirs = hf_extractor_class.from_pretrained(tmp_path / "ours")
    for field in (
        "sampling_rate",
        "num_mel_bins",
        "max_length",
        "mean",
        "std",
        "do_normalize",
        "padding_value",
    ):
        assert getattr(theirs, field) == getattr(ours, field), field

    hf_extractor_class(max_length=512, mean=-1.0, std=2.0).save_pretrained(tmp_path / "theirs")
    loaded = FeatureExtractor.from_pretrained(tmp_path / "theirs")
    assert (loaded.max_length, loaded.mean, loaded.std) == (512, -1.0, 2.0)


def test_preprocessor_config_rejects_unknown_keys(tmp_path):
    config = {**FeatureExtractor().to_dict(), "hop_length": 160}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="hop_length"):
        FeatureExtractor.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"preprocessor_config\.json"):
        FeatureExtractor.from_pretrained(tmp_path / "missing")


# ----------------------------------------------------------------------------------------------
# Facts about the filterbank at AST's setting (docs/numerics.md).


def test_mel_bank_facts_for_ast_setting():
    banks = kaldi.mel_banks(num_mel_bins=128, window_type="hanning")
    assert banks.shape == (128, 257) and banks.dtype == np.float32
    assert np.all(banks[:, -1] == 0)  # Nyquist column
    assert np.all(banks[3] == 0)  # filter 3 falls between FFT bins
    assert np.count_nonzero(banks.any(axis=1)) == 127
    silence = fbank(np.zeros(400, np.float32), window_type="hanning", num_mel_bins=128)
    np.testing.assert_allclose(silence, np.log(np.float32(2**-23)), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {"num_mel_bins": 4},
        {"num_mel_bins": 5},
        {"num_mel_bins": 23},
        {"num_mel_bins": 128},
        {"num_mel_bins": 40, "vtln_warp": 0.9},
        {"num_mel_bins": 64, "low_freq": 300.0, "high_freq": -1000.0},
    ],
)
def test_grouped_mel_product_equals_dense_product(options):
    banks = kaldi.mel_banks(**options)
    spectrum = np.random.default_rng(3).random((50, banks.shape[1]), dtype=np.float32)
    grouped = np.empty((50, banks.shape[0]), np.float32)
    kaldi._mel_product(spectrum, kaldi._mel_groups(banks), out=grouped)
    # float32 sums in a different order: a few ulps of the largest band.
    np.testing.assert_allclose(
        grouped, spectrum @ banks.T, rtol=1e-6, atol=1e-6 * np.abs(spectrum @ banks.T).max()
    )


def test_frame_counts(signals):
    options = FbankOptions()
    assert [kaldi.num_frames(n, options) for n in (160000, 80000, 16000, 164080, 400)] == [
        998,
        498,
        98,
        1024,
        1,
    ]
    no_snip = FbankOptions(snip_edges=False)
    assert kaldi.num_frames(16000, no_snip) == 100
    assert fbank(np.ones(16000, np.float32) * 0.1, snip_edges=False).shape == (100, 23)
    # A frame shorter than the shift: negative padding drops samples on the left.
    assert fbank(
        signals["noise_1s"], snip_edges=False, frame_length=5.0, frame_shift=20.0
    ).shape == (50, 23)


def test_vtln_warp_scales_filter_frequencies_by_inverse_factor():
    plain = kaldi.mel_banks(num_mel_bins=40)
    identity = kaldi.mel_banks(num_mel_bins=40, vtln_warp=1.0, vtln_low=200.0)
    np.testing.assert_array_equal(plain, identity)
    warped = kaldi.mel_banks(num_mel_bins=40, vtln_warp=1.1)
    bins = np.arange(plain.shape[1])
    middle = slice(10, 30)  # filters inside the linear region of the warp
    ratio = ((warped @ bins) / warped.sum(1))[middle] / ((plain @ bins) / plain.sum(1))[middle]
    # In the linear region the warp maps f -> f / 1.1, so filter centres move down by that factor.
    np.testing.assert_allclose(ratio, 1 / 1.1, rtol=0.01)


def test_min_duration_gives_empty_features(signals):
    assert fbank(signals["noise_1s"], min_duration=2.0).shape == (0, 23)
    assert fbank_batch(np.zeros((2, 16000), np.float32), min_duration=2.0).shape == (2, 0, 23)
    ragged = fbank_batch(
        [signals["noise_1s"], signals["clicks_3s"]], min_duration=2.0, subtract_mean=True
    )
    assert [part.shape for part in ragged] == [(0, 23), (298, 23)]


def test_channel_selection_matches_torchaudio_rule(signals):
    stereo = np.stack([signals["noise_1s"], signals["clicks_3s"][:16000]])
    np.testing.assert_array_equal(fbank(stereo), fbank(stereo[0]))
    np.testing.assert_array_equal(fbank(stereo, channel=1), fbank(stereo[1]))


# ----------------------------------------------------------------------------------------------
# Bad input: a clear error naming the problem, never a silent wrong answer.


@pytest.mark.parametrize(
    ("waveform", "error", "match"),
    [
        (np.zeros(0, np.float32), ValueError, "empty"),
        (np.array([0.1] * 500 + [np.nan], np.float32), ValueError, "NaN/Inf"),
        (np.array([0.1] * 500 + [np.inf], np.float32), ValueError, "NaN/Inf"),
        (np.zeros(1000, np.int16), TypeError, "32768"),
        (np.zeros(1000, np.complex64), TypeError, "floating"),
        (np.zeros((2, 2, 1000), np.float32), ValueError, r"\(S,\) or \(C, S\)"),
        (np.zeros(399, np.float32), ValueError, "shorter than one analysis window"),
        (["a", "b"], TypeError, "floating"),
    ],
)
def test_fbank_rejects_bad_waveforms(waveform, error, match):
    with pytest.raises(error, match=match):
        fbank(waveform)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"window_type": "kaiser"}, "window_type='kaiser'"),
        ({"frame_shift": 0.0}, "frame_shift"),
        ({"frame_shift": 0.01}, "at least one sample"),
        ({"frame_length": 0.05}, "frame_length"),
        ({"frame_length": 25.0625, "round_to_power_of_two": False}, "even number"),
        ({"num_mel_bins": 3}, "num_mel_bins"),
        ({"low_freq": 8000.0}, "low_freq"),
        ({"high_freq": 9000.0}, "high_freq"),
        ({"low_freq": 4000.0, "high_freq": 3000.0}, "high_freq"),
        ({"preemphasis_coefficient": 1.5}, "preemphasis_coefficient"),
        ({"sample_frequency": 0.0}, "sample_frequency"),
        ({"energy_floor": -1.0}, "energy_floor"),
        ({"dither": -1.0}, "dither"),
        ({"vtln_warp": 1.2, "vtln_low": 10.0}, "vtln_low"),
        ({"vtln_warp": 1.2, "vtln_high": 8100.0}, "vtln_high"),
        ({"vtln_warp": -1.0}, "vtln_warp"),
    ],
)
def test_fbank_rejects_bad_options(signals, options, match):
    with pytest.raises(ValueError, match=match):
        fbank(signals["noise_1s"], **options)


def test_fbank_rejects_unknown_option_and_channel(signals):
    with pytest.raises(TypeError, match="num_mel_filters"):
        fbank(signals["noise_1s"], num_mel_filters=40)
    with pytest.raises(ValueError, match="channel=2"):
        fbank(np.zeros((2, 1000), np.float32), channel=2)


def test_fbank_batch_names_the_bad_clip(signals):
    with pytest.raises(ValueError, match=r"waveforms\[1\] has 100 samples"):
        fbank_batch([signals["noise_1s"], signals["noise_1s"][:100]])
    with pytest.raises(ValueError, match=r"waveforms\[0\] must be 1-D"):
        fbank_batch([np.zeros((2, 1000), np.float32)])
    with pytest.raises(ValueError, match="empty sequence"):
        fbank_batch([])
    with pytest.raises(ValueError, match=r"\(B, S\) batch"):
        fbank_batch(np.zeros((2, 2, 1000), np.float32))


@pytest.mark.parametrize(
    ("raw_speech", "error", "match"),
    [
        (np.zeros((1, 2, 16000), np.float32), ValueError, "only mono audio"),
        (np.zeros(16000, np.int16), TypeError, "32768"),
        (
            [np.zeros(16000, np.float32), np.zeros(10, np.float32)],
            ValueError,
            r"raw_speech\[1\].*shorter",
        ),
        ([np.zeros((2, 500), np.float32)], ValueError, r"raw_speech\[0\] must be 1-D"),
        ([], ValueError, "empty"),
        (np.full(1000, np.nan, np.float32), ValueError, "NaN/Inf"),
    ],
)
def test_feature_extractor_rejects_bad_input(raw_speech, error, match):
    with pytest.raises(error, match=match):
        FeatureExtractor()(raw_speech, sampling_rate=16000)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"max_length": 0}, "max_length"),
        ({"std": 0.0}, "std"),
        ({"feature_size": 2}, "feature_size"),
        ({"padding_side": "left"}, "padding_side"),
        ({"num_mel_bins": 2}, "num_mel_bins"),
        ({"sampling_rate": -16000}, "sampling_rate"),
        ({"sampling_rate": "16000"}, "sampling_rate"),
        ({"mean": float("nan")}, "mean"),
    ],
)
def test_feature_extractor_rejects_bad_config(config, match):
    with pytest.raises(ValueError, match=match):
        FeatureExtractor(**config)


def test_a_clips_features_do_not_depend_on_its_batch_mates():
    """Bit for bit: frames are processed in blocks that start at each clip, so neither the mel
    product's BLAS rounding nor anything else sees the other clips of a call."""
    rng = np.random.default_rng(3)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (30000, 4000, 52000, 16000)]
    options = {"num_mel_bins": 128, "window_type": "hanning"}
    alone = [fbank(clip, **options) for clip in clips]
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
        batched = fbank_batch([clips[i] for i in order], **options)
        for position, index in enumerate(order):
            np.testing.assert_array_equal(batched[position], alone[index])
