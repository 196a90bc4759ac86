"""scripts/make_kws_dataset.py: random espeak-ng voice variants for the bundled model's data."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).parents[1] / "scripts"


@pytest.fixture(scope="module")
def kws():
    spec = importlib.util.spec_from_file_location(
        "make_kws_dataset", SCRIPTS / "make_kws_dataset.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_variant(text: str) -> dict[str, list[int]]:
    """``{key: numbers}`` of a variant file (``formant N`` keyed by ``formantN``)."""
    fields = {}
    for line in text.splitlines()[2:]:
        key, *values = line.split()
        if key == "formant":
            key, values = f"formant{values[0]}", values[1:]
        fields[key] = [int(value) for value in values]
    return fields


def test_random_variant_is_seeded_and_within_espeak_ranges(kws):
    texts = [kws.random_variant(np.random.default_rng(seed), "random007") for seed in range(200)]
    assert texts[0] == kws.random_variant(np.random.default_rng(0), "random007")
    assert len(set(texts)) == len(texts)
    assert all(text.startswith("language variant\nname random007\n") for text in texts)
    for fields in map(parse_variant, texts):
        assert [f"formant{n}" in fields for n in range(9)] == [True] * 9
        for n in range(9):
            frequency, height, width = fields[f"formant{n}"]
            assert 72 <= frequency <= 156 and 50 <= height <= 130 and 70 <= width <= 160
        base, top = fields["pitch"]
        assert 50 <= base <= 210 and base + 40 <= top <= base + 120
        assert set(fields) <= {f"formant{n}" for n in range(9)} | {
            "pitch", "echo", "flutter", "roughness", "voicing", "consonants", "breath", "tone",
            "klatt",
        }  # fmt: skip
    # Each optional line appears in some variants and not in others.
    counts = {key: sum(key in parse_variant(text) for text in texts) for key in ("echo", "klatt")}
    assert all(0 < count < len(texts) for count in counts.values()), counts


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_random_variants_speak_through_a_private_data_folder(kws, tmp_path):
    espeak = kws.ensure_espeak()
    data = kws.private_espeak_data(espeak, tmp_path)
    count = kws.MAX_RANDOM_VARIANTS  # all of them resolve (espeak-ng caps the voices it lists)
    variants = kws.draw_random_variants(espeak, np.random.default_rng(0), count, data)
    assert list(variants) == [f"random{n:03d}" for n in range(count)]
    base = kws.synthesise(espeak, "en", "seven", 175, 50)
    spoken = [kws.synthesise(espeak, f"en+{name}", "seven", 175, 50, data) for name in variants]
    # An unknown variant would fall back to the base voice without an error.
    assert not any(clip.shape == base.shape and np.allclose(clip, base) for clip in spoken)


def load_script(name: str):
    """A module of scripts/ (they import each other by name, hence scripts/ on sys.path)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def conditions():
    return load_script("kws_conditions")


@pytest.fixture(scope="module")
def engines():
    return load_script("kws_engines")


def tone(seconds: float = 0.4) -> np.ndarray:
    time = np.arange(int(seconds * 16000)) / 16000
    return (0.5 * np.sin(2 * np.pi * 440 * time)).astype(np.float32)


def test_recording_conditions_are_seeded_and_change_the_word(kws, conditions):
    word = tone()
    plain = kws.place_word(np.random.default_rng(0), word)
    # The plain clip does not depend on the conditions generator's existence: same draws as before.
    assert np.array_equal(plain, kws.place_word(np.random.default_rng(0), word))
    recorded = 0
    for seed in range(40):
        clip = kws.place_word(np.random.default_rng(0), word, np.random.default_rng(seed))
        assert clip.shape == (16000,) and np.isfinite(clip).all()
        again = kws.place_word(np.random.default_rng(0), word, np.random.default_rng(seed))
        assert np.array_equal(clip, again)
        # The conditions generator's first draw decides: recorded in conditions, or plain.
        in_conditions = np.random.default_rng(seed).random() < kws.CONDITIONS_PROBABILITY
        assert np.array_equal(clip, plain) != in_conditions
        recorded += in_conditions
    assert 10 <= recorded <= 30


def test_room_impulse_response_decays(conditions):
    for seed in range(20):
        response = conditions.room_impulse_response(np.random.default_rng(seed))
        assert np.abs(response).max() == pytest.approx(1.0)
        energy = np.cumsum(response[::-1] ** 2)[::-1]  # Schroeder curve
        quarter = len(response) // 4
        assert energy[3 * quarter] < 0.1 * energy[quarter]


def test_telephone_removes_low_and_high_frequencies(conditions):
    rng = np.random.default_rng(0)
    white = rng.standard_normal(16000).astype(np.float32)
    band = conditions.telephone(np.random.default_rng(1), white)
    spectrum = np.abs(np.fft.rfft(band)) ** 2
    frequencies = np.fft.rfftfreq(band.size, 1 / 16000)
    inside = spectrum[(frequencies > 600) & (frequencies < 3000)].mean()
    assert spectrum[frequencies > 4500].mean() < 1e-3 * inside
    assert spectrum[frequencies < 100].mean() < 0.1 * inside


@pytest.mark.parametrize("kind", ["coloured_noise", "babble", "hum", "noise"])
def test_backgrounds_have_unit_rms(conditions, kind):
    for seed in range(5):
        audio = getattr(conditions, kind)(np.random.default_rng(seed), 16000)
        assert audio.shape == (16000,)
        assert np.sqrt(np.mean(audio**2)) == pytest.approx(1.0, rel=1e-3)


def test_engine_plan_covers_every_voice_and_class(engines, kws):
    plan = engines.plan_split(np.random.default_rng(0), "festival", 60)
    assert len(plan) == 60 * 11
    assert {item.voice.name for item in plan} == {v.name for v in engines.VOICES["festival"]}
    assert {item.label for item in plan} == {*kws.CORE_WORDS, kws.UNKNOWN}
    for item in plan:
        word = item.text.rstrip("".join(engines.PUNCTUATION))
        unknown = {engines.spoken_form(w, item.voice) for w in kws.UNKNOWN_WORDS}
        if item.label == kws.UNKNOWN:
            assert word in unknown
        else:
            assert word == engines.spoken_form(item.label, item.voice)
        assert engines.STRETCH[0] <= item.stretch <= engines.STRETCH[1]
        assert (item.f0 is None) == (item.voice.f0 is None)
    assert plan == engines.plan_split(np.random.default_rng(0), "festival", 60)
    # Respelled words are what the foreign voices say; English voices say the words themselves.
    assert any(item.text.startswith("jes") and item.label == "yes" for item in plan)
    assert all(
        item.text.startswith(item.label) for item in plan
        if item.voice.language == "english" and item.label != kws.UNKNOWN
    )  # fmt: skip


def test_test_splits_hold_english_voices_only(engines):
    for engine in engines.ENGINES:
        plan = engines.plan_split(np.random.default_rng(0), engine, 20, split="test")
        assert {item.voice.language for item in plan} == {"english"}
    assert len(engines.split_voices("festival", "train")) > len(
        engines.split_voices("festival", "test")
    )


def test_every_word_is_respelled_in_every_language(engines, kws):
    for language, words in engines.RESPELLINGS.items():
        assert set(words) == {*kws.CORE_WORDS, *kws.UNKNOWN_WORDS}, language
        assert all(spelling.isascii() and spelling.isalpha() for spelling in words.values())
    languages = {v.language for voices in engines.VOICES.values() for v in voices}
    assert languages == {"english", *engines.RESPELLINGS}


def test_leave_one_engine_out_drops_shared_speakers(tmp_path):
    loeo = load_script("kws_loeo")
    for split in ("train", "test"):
        (tmp_path / split / "yes").mkdir(parents=True)
        (tmp_path / split / "yes" / "00000.wav").touch()
    rows = {
        "flite": [("kal16", "kal"), ("awb", "awb"), ("slt", "slt")],
        "festival": [("kal_diphone", "kal"), ("ked_diphone", "ked")],
    }
    for engine, voices in rows.items():
        (tmp_path / "engines" / engine).mkdir(parents=True)
        lines = ["path,split,label,engine,voice,speaker,text,stretch,f0"]
        for split in ("train", "test"):
            lines += [
                f"engines/{engine}/{split}/yes/{n}.wav,{split},yes,{engine},{voice},{speaker},,,"
                for n, (voice, speaker) in enumerate(voices)
            ]
        (tmp_path / "engines" / engine / "clips.csv").write_text("\n".join(lines) + "\n")
    counts = loeo.build(tmp_path, ("espeak-ng", "flite", "festival"))
    assert counts["train_all"] == 1 + 3 + 2
    # Leaving festival out drops its clips and flite's kal and slt (festival's speakers).
    kept = (tmp_path / "loeo_festival.csv").read_text()
    assert "engines/flite/train/yes/1.wav" in kept  # awb
    assert "engines/flite/train/yes/0.wav" not in kept and "yes/2.wav" not in kept
    assert "festival" not in kept
    assert counts["flite"]["loeo_train"] == 1 + 1  # espeak-ng + festival's ked
    assert counts["espeak-ng"]["loeo_train"] == 5
    assert (tmp_path / "test_espeak-ng.csv").read_text().splitlines()[1:] == [
        "test/yes/00000.wav,yes"
    ]


def test_non_free_sources_leave_the_system_lists_alone(engines, tmp_path):
    options = engines.non_free_sources(tmp_path)
    line = (tmp_path / "sources.list").read_text().split()
    assert line[:2] == ["deb", "http://deb.debian.org/debian"] and line[-2:] == ["main", "non-free"]
    settings = dict(option.split("=", 1) for option in options[1::2])
    assert options[::2] == ["-o"] * 3
    assert settings == {
        "Dir::Etc::sourcelist": str(tmp_path / "sources.list"),
        "Dir::Etc::sourceparts": "-",
        "Dir::State::Lists": str(tmp_path / "lists"),
    }
    assert (tmp_path / "lists" / "partial").is_dir()


def _voices_installed() -> bool:
    engines = load_script("kws_engines")
    return shutil.which("dpkg-query") is not None and all(
        engines.package_installed(package)
        for packages in engines.ENGINE_PACKAGES.values()
        for package in packages
    )


@pytest.mark.skipif(
    not _voices_installed(), reason="flite, festival, Pico and their voices are not installed"
)
def test_every_engine_voice_speaks(engines):
    for engine, voices in engines.VOICES.items():
        program = shutil.which(engines.ENGINE_PROGRAMS[engine])
        items = [engines.Item("left", voice, "left", 1.0, 120 if voice.f0 else None)
                 for voice in voices]  # fmt: skip
        spoken = engines.say(engine, program, items)
        for item, audio in zip(items, spoken, strict=True):
            assert 0.15 <= audio.size / 16000 <= 1.5, (engine, item.voice.name)
            assert np.abs(audio).max() > 0.01
        # Different voices sound different.
        assert len({audio.size for audio in spoken}) > 1


def test_training_recipe_decays_to_the_same_last_rate_whatever_the_epochs():
    train = load_script("train_kws")
    for epochs in (3, 5, 7, 12):
        flags = train.recipe(epochs)

        def value(flag: str, flags: list[str] = flags) -> str:
            return flags[flags.index(flag) + 1]

        start, decay = int(value("--lr-decay-start")), float(value("--lr-decay"))
        assert int(value("--epochs")) == epochs and 0 < start < epochs
        # The last epoch's rate over the peak; the factor is written with 3 decimals.
        assert decay ** (epochs - start) == pytest.approx(train.LAST_LR_FACTOR, rel=0.03)
        first, last = map(int, flags[flags.index("--weight-average") + 1 :][:2])
        assert last == epochs and 1 <= first < last


def test_engine_data_is_ready_only_with_the_recipe_counts_and_voices(tmp_path, engines):
    train = load_script("train_kws")
    assert not train.engine_ready(tmp_path, "flite")
    folder = tmp_path / "engines" / "flite"
    folder.mkdir(parents=True)
    per_class = train.ENGINE_TRAIN_PER_CLASS["flite"]
    stats = {
        "clips": {"train": per_class * 12, "test": train.ENGINE_TEST_PER_CLASS * 12},
        "voices": [{"name": voice.name} for voice in engines.VOICES["flite"]],
        "conditions_probability": train.CONDITIONS_PROBABILITY,
    }
    (folder / "stats.json").write_text(json.dumps(stats))
    assert train.engine_ready(tmp_path, "flite")
    stats["voices"] = stats["voices"][:-1]  # data of an older voice list
    (folder / "stats.json").write_text(json.dumps(stats))
    assert not train.engine_ready(tmp_path, "flite")


def test_real_voice_words_are_cut_at_the_longest_pause():
    real = load_script("kws_real_voices")
    rate = 16000
    t = np.arange(rate) / rate
    tone = lambda start, stop: np.where((t >= start) & (t < stop), np.sin(2e3 * t), 0.0)
    # Two words (the first with a 50-ms dip inside it, shorter than a pause) 200 ms apart.
    audio = (tone(0.10, 0.30) + tone(0.35, 0.45) + 0.5 * tone(0.65, 0.90)).astype(np.float32)
    audio += 1e-4 * np.random.default_rng(0).standard_normal(rate).astype(np.float32)
    assert real.loud_runs(audio) == [(1600, 7200), (10400, 14400)]
    first, second = real.words(audio, 2)
    with pytest.raises(ValueError, match="3 words asked for, 2 found"):
        real.words(audio, 3)
    assert (len(first), len(second)) == (7200 - 1600, 14400 - 10400)
    clip = real.centred(second)
    assert clip.shape == (rate,) and clip.dtype == np.float32
    np.testing.assert_array_equal(clip[6000:10000], second)  # (16000 - 4000) // 2 = 6000
    assert not clip[:6000].any() and not clip[10000:].any()


def test_evaluation_finds_each_engine_clips_voice(tmp_path):
    evaluate = load_script("kws_evaluate")
    engine = tmp_path / "engines" / "flite"
    engine.mkdir(parents=True)
    (engine / "clips.csv").write_text(
        "path,split,label,engine,voice,speaker,text,stretch,f0\n"
        "engines/flite/test/yes/00000.wav,test,yes,flite,slt,slt,yes,1.0,176\n"
        "engines/flite/test/no/00000.wav,test,no,flite,kal,kal,no,1.0,81\n"
    )
    clips = [engine / "test" / "no" / "00000.wav", engine / "test" / "yes" / "00000.wav"]
    assert evaluate.voices_of(clips) == ["kal", "slt"]
    assert evaluate.voices_of([*clips, tmp_path / "test" / "yes" / "00000.wav"]) is None
    labels = list(evaluate.kws.LABELS)  # yes, no, ..., _silence_, _unknown_
    targets = np.eye(12)[[0, 0, 1, 1, 11]]
    scores = np.eye(12)[[0, 1, 1, 1, 0]]  # one `yes` by kal missed; `_unknown_` is no command
    summary = evaluate.summarise(scores, targets, labels, ["slt", "kal", "kal", "slt", "kal"])
    assert summary["per_voice_command_words"] == {"kal": 0.5, "slt": 1.0}
    assert "per_voice_command_words" not in evaluate.summarise(scores, targets, labels)
