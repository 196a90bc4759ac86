"""Datasets (folders, CSV manifests, splits), the feature cache and the batch loader."""

import numpy as np
import pytest
import soundfile

from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.training.datasets import folder_dataset, load_dataset, manifest_dataset, split_dataset
from ast_jax.training.features import compute_features, load_waveforms
from ast_jax.training.loader import Loader, batch_indices

RATE = 16000
EXTRACTOR = FeatureExtractor(max_length=48, num_mel_bins=32)


@pytest.fixture(scope="module")
def folder(tone, tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    for label, frequency in (("high", 2000.0), ("low", 300.0)):
        (root / label).mkdir()
        for i in range(3):
            clip = tone(frequency * (1 + i / 10), 0.3, RATE, amplitude=0.3)
            soundfile.write(root / label / f"{i}.wav", clip, RATE)
    return root


def test_folder_dataset(folder):
    dataset = load_dataset(folder)
    assert dataset.labels == ("high", "low") and len(dataset) == 6
    np.testing.assert_array_equal(dataset.targets.sum(0), [3, 3])
    assert not dataset.is_multi_label
    assert folder_dataset(folder, labels=("low", "high", "other")).targets.shape == (6, 3)
    with pytest.raises(ValueError, match="not among"):
        folder_dataset(folder, labels=("low",))
    with pytest.raises(FileNotFoundError, match="class folders"):
        folder_dataset(folder / "high")


def test_manifest_multi_label(folder, tmp_path):
    manifest = tmp_path / "clips.csv"
    manifest.write_text(
        "path,labels\n"
        f"{folder}/high/0.wav,speech;music\n"
        f"{folder}/low/0.wav,music\n"
        f"{folder}/low/1.wav,dog,music\n"
    )
    dataset = manifest_dataset(manifest)
    assert dataset.labels == ("dog", "music", "speech")
    np.testing.assert_array_equal(dataset.targets, [[0, 1, 1], [0, 1, 0], [1, 1, 0]])
    assert dataset.is_multi_label
    manifest.write_text(f"{folder}/low/0.wav\n")
    with pytest.raises(ValueError, match="no label"):
        manifest_dataset(manifest)


def test_split_is_seeded_and_disjoint(folder):
    dataset = load_dataset(folder)
    train, val = split_dataset(dataset, 1 / 3, seed=0)
    assert len(train) == 4 and len(val) == 2
    assert not set(train.paths) & set(val.paths)
    assert split_dataset(dataset, 1 / 3, seed=0)[1].paths == val.paths
    with pytest.raises(ValueError, match="fraction"):
        split_dataset(dataset, 0.0, seed=0)


def test_features_are_unnormalised_and_cached(folder, tmp_path):
    dataset = load_dataset(folder)
    features = compute_features(dataset.paths, EXTRACTOR, tmp_path)
    assert features.shape == (6, 48, 32)
    reference = FeatureExtractor(max_length=48, num_mel_bins=32, do_normalize=False)
    clip = soundfile.read(dataset.paths[0], dtype="float32")[0]
    np.testing.assert_array_equal(
        features[0], reference(clip, sampling_rate=RATE)["input_values"][0]
    )
    (cache,) = tmp_path.glob("features-*.npy")
    # Other normalisation statistics share the cache; a second call reads it.
    again = compute_features(
        dataset.paths, FeatureExtractor(max_length=48, num_mel_bins=32, mean=1.0), tmp_path
    )
    np.testing.assert_array_equal(again, features)
    assert list(tmp_path.glob("features-*.npy")) == [cache]
    compute_features(dataset.paths, FeatureExtractor(max_length=64, num_mel_bins=32), tmp_path)
    assert len(list(tmp_path.glob("features-*.npy"))) == 2


def test_batches_are_seeded_and_cover_the_epoch():
    first = batch_indices(10, 3, seed=0, epoch=0)
    assert first.shape == (3, 3) and len(set(first.ravel())) == 9
    np.testing.assert_array_equal(first, batch_indices(10, 3, seed=0, epoch=0))
    assert not np.array_equal(first, batch_indices(10, 3, seed=0, epoch=1))
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices(2, 3, seed=0, epoch=0)


def test_loader_with_mixup(folder, tmp_path):
    dataset = load_dataset(folder)
    features = compute_features(dataset.paths, EXTRACTOR, tmp_path)
    waveforms = load_waveforms(dataset.paths, EXTRACTOR, tmp_path)
    loader = Loader(
        features, dataset.targets, batch_size=3, seed=0, mixup=1.0, waveforms=waveforms,
        extractor=EXTRACTOR,
    )  # fmt: skip
    batches = list(loader.epoch(0))
    assert len(batches) == loader.steps_per_epoch == 2
    targets = np.concatenate([np.asarray(b["targets"]) for b in batches])
    # Every example was mixed: its target is lam at its class and 1 - lam at the partner's
    # (summing to 1 when both are the same class).
    np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
    assert (targets.max(-1) < 1.0).any()
    again = np.concatenate([np.asarray(b["features"]) for b in loader.epoch(0)])
    np.testing.assert_array_equal(
        again, np.concatenate([np.asarray(b["features"]) for b in batches])
    )
    with pytest.raises(ValueError, match="waveforms"):
        Loader(features, dataset.targets, batch_size=3, seed=0, mixup=0.5)
