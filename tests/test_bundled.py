"""The bundled keyword-spotting model loads offline and classifies the bundled example clips."""

from pathlib import Path

import pytest

from ast_jax import AudioClassifier, load_feature_extractor, load_pretrained
from ast_jax.checkpoints.bundled import bundled_model_path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "audio"
LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes")


def test_bundled_model_loads():
    path = bundled_model_path()
    config, _ = load_pretrained(path)
    assert set(config.labels) == {*LABELS, "_silence_", "_unknown_"}
    assert config.problem_type == "single_label_classification"
    extractor = load_feature_extractor(path)
    assert (extractor.max_length, extractor.sampling_rate) == (config.max_length, 16000)
    assert (path / "MODEL_CARD.md").is_file()
    with pytest.raises(ValueError, match="unknown bundled model"):
        bundled_model_path("audioset")


def test_bundled_model_classifies_the_example_clips():
    clips = sorted(EXAMPLES.glob("kws_*.wav"))
    assert len(clips) >= 3
    classifier = AudioClassifier.from_pretrained(bundled_model_path(), batch_size=len(clips))
    for clip, result in zip(clips, classifier.classify(clips), strict=True):
        (label, _), *_ = result.top_k(1)
        assert label == clip.stem.removeprefix("kws_"), (clip.name, result.top_k(3))
