"""Datasets (folders, CSV manifests, splits), the order of examples, the streaming pipeline, the
feature cache and the in-memory batches."""

import numpy as np
import pytest
import soundfile

from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.training.datasets import folder_dataset, load_dataset, manifest_dataset, split_dataset
from ast_jax.training.features import (
    compute_features,
    feature_chunks,
    feature_stats,
    raw_extractor,
)
from ast_jax.training.loader import FeatureBatches
from ast_jax.training.pipeline import AudioStream
from ast_jax.training.sampling import balanced_weights, epoch_order
from ast_jax.training.step import batch_features

RATE = 16000
EXTRACTOR = FeatureExtractor(max_length=48, num_mel_bins=32)
# The JAX fbank computes in float32 (the NumPy one in float64): the front end's tolerance on
# resolvable bands, as in test_jax_features.py (docs/numerics.md).
JAX_LOG_TOL = 1e-3


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
    first = epoch_order(10, 3, seed=0, epoch=0)
    assert first.shape == (3, 3) and len(set(first.ravel())) == 9
    np.testing.assert_array_equal(first, epoch_order(10, 3, seed=0, epoch=0))
    assert not np.array_equal(first, epoch_order(10, 3, seed=0, epoch=1))
    with pytest.raises(ValueError, match="batch_size"):
        epoch_order(2, 3, seed=0, epoch=0)


def test_balanced_weights_follow_the_audioset_recipe():
    targets = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]], np.float32)
    # Label counts 3, 1, 1: an example weighs the sum of 1000 / (count + 0.01) over its labels.
    raw = np.array([1 / 3.01, 1 / 3.01, 1 / 3.01 + 1 / 1.01, 1 / 1.01])
    np.testing.assert_allclose(balanced_weights(targets), raw / raw.sum(), rtol=1e-12)
    many = np.tile(targets, (1000, 1))  # 4000 examples, label counts 3000, 1000, 1000
    draws = epoch_order(4000, 4000, seed=0, epoch=0, weights=balanced_weights(many))
    frequency = np.bincount(draws.ravel() % 4, minlength=4) / 4000  # per kind of example
    kinds = np.array([1 / 3000.01, 1 / 3000.01, 1 / 3000.01 + 1 / 1000.01, 1 / 1000.01])
    # 4000 draws: one standard deviation of a frequency near 0.3 is 0.007; allow 4.
    np.testing.assert_allclose(frequency, kinds / kinds.sum(), atol=0.03)


def _stream(dataset, **options):
    return AudioStream(dataset, EXTRACTOR, batch_size=options.pop("batch_size", 4), **options)


def test_stream_decodes_pads_and_orders_the_clips(folder):
    dataset = load_dataset(folder)
    stream = _stream(dataset, seed=3)
    batches = list(stream.epoch(1))
    assert len(batches) == stream.steps_per_epoch == 1  # 6 clips, batches of 4: one full batch
    (batch,) = batches
    rows = epoch_order(6, 4, seed=3, epoch=1)[0]
    samples = EXTRACTOR.samples_needed
    assert batch["waveforms"].shape == (4, samples) and batch["waveforms"].dtype == np.float32
    for row, index in enumerate(rows):
        clip = soundfile.read(dataset.paths[index], dtype="float32")[0][:samples]
        assert batch["lengths"][row] == clip.size
        np.testing.assert_array_equal(batch["waveforms"][row, : clip.size], clip)
        assert not batch["waveforms"][row, clip.size :].any()
        np.testing.assert_array_equal(batch["targets"][row], dataset.targets[index])
    np.testing.assert_array_equal(batch["mask"], 1.0)
    ordered = list(stream.ordered())  # 6 clips in order, the second batch padded
    assert [b["mask"].tolist() for b in ordered] == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert not ordered[1]["waveforms"][2:].any()


def test_stream_resumes_mid_epoch_and_splits_over_processes(folder):
    dataset = load_dataset(folder)
    whole = list(_stream(dataset, batch_size=2, seed=1).epoch(0))
    assert len(whole) == 3
    resumed = list(_stream(dataset, batch_size=2, seed=1).epoch(0, start_step=1))
    for ours, theirs in zip(resumed, whole[1:], strict=True):
        np.testing.assert_array_equal(ours["waveforms"], theirs["waveforms"])
    halves = [
        list(_stream(dataset, batch_size=2, seed=1, process_index=i, process_count=2).epoch(0))
        for i in range(2)
    ]
    for step, batch in enumerate(whole):
        joined = np.concatenate([halves[0][step]["waveforms"], halves[1][step]["waveforms"]])
        np.testing.assert_array_equal(joined, batch["waveforms"])
    with pytest.raises(ValueError, match="multiple of the 2 processes"):
        _stream(dataset, batch_size=3, process_count=2)


def test_stream_decodes_the_same_in_worker_processes(folder):
    dataset = load_dataset(folder)
    here = list(_stream(dataset, batch_size=2, seed=5).epoch(2))
    workers = list(_stream(dataset, batch_size=2, seed=5, workers=2).epoch(2))
    assert len(workers) == len(here)
    for ours, theirs in zip(workers, here, strict=True):
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name])


def test_device_features_of_the_stream_equal_the_extractor(
    folder, assert_close_in_resolvable_range
):
    dataset = load_dataset(folder)
    batch = next(iter(_stream(dataset, batch_size=6).ordered()))
    ours = np.asarray(batch_features(batch, EXTRACTOR))  # unnormalised, on the device
    clips = [soundfile.read(path, dtype="float32")[0] for path in dataset.paths]
    output = raw_extractor(EXTRACTOR)(clips, sampling_rate=RATE, return_num_frames=True)
    for row, count in enumerate(output["num_frames"]):
        # Frames past a clip's end are the extractor's padding value, exactly.
        np.testing.assert_array_equal(ours[row, count:], EXTRACTOR.padding_value)
        # float32 JAX fbank against the float64 NumPy one: the front end's own tolerance.
        assert_close_in_resolvable_range(
            ours[row, :count], output["input_values"][row, :count], True, JAX_LOG_TOL
        )


def test_feature_batches_serve_epochs_and_ordered_passes():
    features = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    targets = np.eye(5, dtype=np.float32)
    batches = FeatureBatches(features, targets, batch_size=2, seed=4)
    epoch = list(batches.epoch(0))
    rows = epoch_order(5, 2, seed=4, epoch=0)
    assert len(epoch) == batches.steps_per_epoch == 2
    for batch, index in zip(epoch, rows, strict=True):
        np.testing.assert_array_equal(batch["features"], features[index])
    ordered = list(batches.ordered())
    assert [b["mask"].tolist() for b in ordered] == [[1, 1], [1, 1], [1, 0]]
    np.testing.assert_array_equal(ordered[2]["features"][0], features[4])


def test_feature_stats_in_chunks_equal_the_whole(folder):
    dataset = load_dataset(folder)
    whole = compute_features(dataset.paths, EXTRACTOR)
    chunked = feature_stats(feature_chunks(dataset.paths, EXTRACTOR))
    np.testing.assert_allclose(chunked, (whole.mean(dtype=np.float64), whole.std(dtype=np.float64)))
