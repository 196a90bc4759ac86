"""The train step, losses, optimiser and schedule, gradient accumulation, and `fit` end to end
(a tiny model on a synthetic task: the loss falls, accuracy rises, resume equals one run)."""

import dataclasses

import jax
import numpy as np
import optax
import pytest
import torch
from flax.traverse_util import flatten_dict

from ast_jax.checkpoints.pretrained import load_pretrained
from ast_jax.model.modules import ASTForAudioClassification
from ast_jax.training.config import TrainConfig
from ast_jax.training.history import format_record
from ast_jax.training.loader import FeatureBatches
from ast_jax.training.loop import fit
from ast_jax.training.optimizer import learning_rate_schedule, make_optimizer, schedule_warning
from ast_jax.training.state import StateCheckpoints
from ast_jax.training.step import loss_fn, make_train_step

# float32 losses and Adam updates against torch's float32: a few ulps of the values involved.
FLOAT32_TOL = 1e-6
# One big step vs two accumulated half-steps. With eps = 1 and lr = 1, Adam's first update is
# ~g / (|g| + 1): linear in the accumulated gradient, so only float32 summation order differs
# (the default eps would turn the pure rounding noise of zero-gradient params, such as the key
# biases, into lr-sized sign steps). A missed or doubled micro-batch moves updates by ~0.1.
ACCUMULATION_TOL = 1e-6


def _flat(tree):
    return {k: np.asarray(v) for k, v in flatten_dict(tree, sep="/").items()}


@pytest.mark.parametrize(
    "problem_type",
    ["single_label_classification", "multi_label_classification", "regression"],
)
def test_losses_match_torch(problem_type):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    if problem_type == "single_label_classification":
        labels = rng.integers(0, 4, 6)
        targets = np.eye(4, dtype=np.float32)[labels]
        expected = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels))
    elif problem_type == "multi_label_classification":
        targets = (rng.random((6, 4)) < 0.4).astype(np.float32)
        expected = torch.nn.functional.binary_cross_entropy_with_logits(
            torch.tensor(logits), torch.tensor(targets)
        )
    else:
        targets = rng.normal(size=(6, 4)).astype(np.float32)
        expected = torch.nn.functional.mse_loss(torch.tensor(logits), torch.tensor(targets))
    got = loss_fn(logits, targets, np.ones(6, np.float32), problem_type)
    np.testing.assert_allclose(got, expected.item(), rtol=FLOAT32_TOL)


def test_loss_mask_drops_padding_rows():
    logits = np.array([[2.0, 0.0], [0.0, 5.0]], np.float32)
    targets = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    masked = loss_fn(logits, targets, np.array([1.0, 0.0]), "single_label_classification")
    alone = loss_fn(logits[:1], targets[:1], np.ones(1), "single_label_classification")
    np.testing.assert_allclose(masked, alone, rtol=FLOAT32_TOL)
    with pytest.raises(ValueError, match="problem_type"):
        loss_fn(logits, targets, np.ones(2), "ranking")


def test_optimizer_is_torch_adam_with_l2_weight_decay():
    # A large decay makes L2-in-the-gradient (torch Adam) and decoupled decay (AdamW) differ.
    config = TrainConfig(
        learning_rate=1e-2, weight_decay=0.1, warmup_steps=0, lr_decay=1.0, betas=(0.95, 0.999)
    )
    rng = np.random.default_rng(1)
    start = rng.normal(size=(5,)).astype(np.float32)
    grads = [rng.normal(size=(5,)).astype(np.float32) for _ in range(4)]
    weight = torch.nn.Parameter(torch.tensor(start))
    reference = torch.optim.Adam([weight], lr=1e-2, betas=(0.95, 0.999), weight_decay=0.1)
    optimizer = make_optimizer(config, updates_per_epoch=10)
    params, state = start, optimizer.init(start)
    for grad in grads:
        weight.grad = torch.tensor(grad)
        reference.step()
        updates, state = optimizer.update(grad, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params, weight.detach().numpy(), atol=FLOAT32_TOL)


def test_schedule_warmup_stairs_and_epoch_decay():
    config = TrainConfig(
        learning_rate=1.0, warmup_steps=1000, warmup_every=50, lr_decay_start=2, lr_decay=0.5
    )
    schedule = learning_rate_schedule(config, updates_per_epoch=10_000)
    # The original sets lr = step / 1000 * base every 50 steps: 0 for steps 0..49.
    warm = [float(schedule(s)) for s in (0, 49, 50, 999, 1000, 5000)]
    np.testing.assert_allclose(warm, [0.0, 0.0, 0.05, 0.95, 1.0, 1.0], rtol=FLOAT32_TOL)
    # Milestones 2, 3, ... (torch MultiStepLR stepped per epoch): epoch 2 halved, 3 quartered.
    no_warmup = learning_rate_schedule(dataclasses.replace(config, warmup_steps=0), 400)
    decayed = [float(no_warmup(400 * e + 399)) for e in (0, 1, 2, 3)]
    np.testing.assert_allclose(decayed, [1.0, 1.0, 0.5, 0.25], rtol=FLOAT32_TOL)


def _plain_step(model_config, config, optimizer, params):
    model = ASTForAudioClassification(model_config)
    step = make_train_step(
        model, optimizer, config, problem_type="single_label_classification", mean=-8.0, std=2.0
    )
    return step, optimizer.init(params)


def test_gradient_accumulation_equals_one_big_batch(
    trainable_config, trainable_params, synthetic_task
):
    features, targets = synthetic_task(16, seed=2)
    no_augment = dict(freqm=0, timem=0, warmup_steps=0, learning_rate=1.0, eps=1.0)
    big = TrainConfig(batch_size=16, **no_augment)
    small = TrainConfig(batch_size=8, accumulate=2, **no_augment)
    key = jax.random.key(0)

    step, state = _plain_step(trainable_config, big, make_optimizer(big, 10), trainable_params())
    expected, _, _ = step(trainable_params(), state, _batch(features, targets), key)
    step, state = _plain_step(
        trainable_config, small, make_optimizer(small, 10), trainable_params()
    )
    params = trainable_params()
    for half in (slice(0, 8), slice(8, 16)):
        params, state, _ = step(params, state, _batch(features[half], targets[half]), key)
    for name, value in _flat(expected).items():
        np.testing.assert_allclose(_flat(params)[name], value, atol=ACCUMULATION_TOL, err_msg=name)


def _batch(features, targets):
    return {"features": features, "targets": targets, "mask": np.ones(len(features), np.float32)}


# Augmented training on 3 balanced classes: chance is 1/3.
TRAIN = TrainConfig(
    epochs=20, batch_size=16, learning_rate=3e-3, warmup_steps=0, lr_decay_start=15,
    freqm=4, timem=6, noise=0.1, time_shift=2, weight_average=(18, 20), eval_batch_size=32,
)  # fmt: skip
CHANCE = 1 / 3
# "Clearly above chance": the task is easy; a model that learned nothing stays near 1/3.
MARGIN = 0.4


@pytest.fixture(scope="module")
def task(synthetic_task):
    train = FeatureBatches(
        *synthetic_task(192, seed=0), batch_size=TRAIN.batch_size, seed=TRAIN.seed
    )
    val = FeatureBatches(*synthetic_task(48, seed=1), batch_size=TRAIN.eval_batch_size)
    return train, val


@pytest.fixture(scope="module")
def full_run(trainable_config, trainable_params, trainable_extractor, task, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    train, val = task
    return out, fit(
        trainable_config, trainable_params(), trainable_extractor, train, val, TRAIN, out,
        progress=False,
    )  # fmt: skip


def test_loss_falls_and_accuracy_rises(full_run):
    out, result = full_run
    history = result.history
    assert len(history) == TRAIN.epochs
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_accuracy"] > CHANCE + MARGIN
    assert history[-1]["ensemble_accuracy"] > CHANCE + MARGIN
    for name in ("history.json", "history.csv", "curves.png"):
        assert (out / name).stat().st_size > 0


def test_saved_models_load(trainable_config, full_run):
    out, result = full_run
    config, params = load_pretrained(out / "model")
    assert config.labels == trainable_config.labels
    for name, value in _flat(result.params).items():
        np.testing.assert_array_equal(_flat(params)[name], value)
    _, averaged = load_pretrained(out / "model_wa")
    for name, value in _flat(result.averaged_params).items():
        np.testing.assert_array_equal(_flat(averaged)[name], value)


def _fit(trainable_config, trainable_params, trainable_extractor, task, train_config, out, **kw):
    train, val = task
    return fit(
        trainable_config, trainable_params(), trainable_extractor, train, val, train_config, out,
        progress=False, **kw,
    )  # fmt: skip


def _assert_same_run(resumed, uninterrupted):
    # Same batches, keys and optimiser state: bit-exact on one CPU device.
    for name, value in _flat(uninterrupted.params).items():
        np.testing.assert_array_equal(_flat(resumed.params)[name], value, err_msg=name)
    for name, value in _flat(uninterrupted.averaged_params).items():
        np.testing.assert_array_equal(_flat(resumed.averaged_params)[name], value, err_msg=name)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in uninterrupted.history]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history] == strip


def test_resume_equals_uninterrupted_run(
    trainable_config, trainable_params, trainable_extractor, task, full_run, tmp_path
):
    _, uninterrupted = full_run
    args = (trainable_config, trainable_params, trainable_extractor, task)
    _fit(*args, dataclasses.replace(TRAIN, epochs=10), tmp_path)
    changed = dataclasses.replace(TRAIN, learning_rate=1e-3)
    with pytest.raises(ValueError, match="learning_rate"):  # only `epochs` may change
        _fit(*args, changed, tmp_path, resume=True)
    _assert_same_run(_fit(*args, TRAIN, tmp_path, resume=True), uninterrupted)


def test_resume_refuses_other_data_and_a_new_run_refuses_an_old_state(
    trainable_config, trainable_params, trainable_extractor, task, tmp_path
):
    args = (trainable_config, trainable_params, trainable_extractor, task)
    short = dataclasses.replace(TRAIN, epochs=1)
    _fit(*args, short, tmp_path, data={"train": "a", "validation": "b"})
    with pytest.raises(ValueError, match=r"data .* differ.*validation: 'b' -> 'c'"):
        _fit(*args, short, tmp_path, resume=True, data={"train": "a", "validation": "c"})
    with pytest.raises(ValueError, match="holds the state of an earlier run"):
        _fit(*args, short, tmp_path, data={"train": "a", "validation": "b"})


def test_a_schedule_that_never_trains_is_named():
    short = dataclasses.replace(TRAIN, warmup_steps=1000, warmup_every=50)
    assert "stays 0 for all 40 updates" in schedule_warning(short, 40)
    assert "longer than this run (400 updates)" in schedule_warning(short, 400)
    assert schedule_warning(short, 5000) is None
    assert schedule_warning(dataclasses.replace(short, warmup_steps=0), 40) is None


class _Interrupt(Exception):
    pass


def test_resume_mid_epoch_equals_uninterrupted_run(
    trainable_config, trainable_params, trainable_extractor, task, full_run, tmp_path, monkeypatch
):
    """A run stopped inside an epoch (after a state saved 4 steps into epoch 7) resumes there."""
    _, uninterrupted = full_run
    args = (trainable_config, trainable_params, trainable_extractor, task)
    train, _ = task
    steps = train.steps_per_epoch
    original = FeatureBatches.epoch
    stop_at = (6, 6)  # epoch 7, after step 6 (the state of step 4 is the newest)

    def interrupted(self, epoch, start_step=0):
        for step, batch in enumerate(original(self, epoch, start_step), start=start_step):
            if (epoch, step) == stop_at:
                raise _Interrupt
            yield batch

    monkeypatch.setattr(FeatureBatches, "epoch", interrupted)
    with pytest.raises(_Interrupt):
        _fit(*args, TRAIN, tmp_path, save_every=4)
    monkeypatch.setattr(FeatureBatches, "epoch", original)
    assert StateCheckpoints(tmp_path / "state").latest() == 6 * steps + 4
    _assert_same_run(_fit(*args, TRAIN, tmp_path, resume=True, save_every=4), uninterrupted)
    kept = sorted(int(p.name) for p in (tmp_path / "state").iterdir() if p.name.isdigit())
    assert kept[-2:] == [TRAIN.epochs * steps - 4, TRAIN.epochs * steps]  # keep=2 latest


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_state(
    trainable_config, trainable_params, trainable_extractor, task, tmp_path
):
    train, val = task
    poisoned = FeatureBatches(
        np.where(np.arange(len(train.features))[:, None, None] == 5, np.nan, train.features),
        train.targets, batch_size=TRAIN.batch_size, seed=TRAIN.seed,
    )  # fmt: skip
    config = dataclasses.replace(TRAIN, epochs=2)
    with pytest.raises(FloatingPointError, match="last good state"):
        fit(
            trainable_config, trainable_params(), trainable_extractor, poisoned, val, config,
            tmp_path, progress=False, log_every=1,
        )  # fmt: skip
    assert StateCheckpoints(tmp_path / "state").latest() is None  # nothing saved after the NaN
    assert not (tmp_path / "model").exists()


def test_train_config_errors():
    with pytest.raises(ValueError, match="weight_average"):
        TrainConfig(epochs=3, weight_average=(3, 2))
    with pytest.raises(ValueError, match="mixup"):
        TrainConfig(mixup=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_epoch_summary_shows_small_rates_in_scientific_notation():
    record = {"epoch": 3, "learning_rate": 1e-5, "train_loss": 0.123456}
    assert format_record(record) == "learning_rate 1e-05, train_loss 0.1235"
