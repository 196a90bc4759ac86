"""scripts/make_kws_dataset.py: random espeak-ng voice variants for the bundled model's data."""

from __future__ import annotations

import importlib.util
import shutil
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
