"""Fine-tuning and training AST with optax: the original recipes' optimiser, losses, a pure jitted
train step and an epoch loop with evaluation, checkpoint ensembling and weight averaging.

The train step is ``(params, opt_state, batch, rng) -> (params, opt_state, metrics)``: it augments
the batch's unnormalised log-mel features (SpecAugment, normalisation, noise, time shift;
`ast_jax.augment`), runs the model with dropout, takes the loss of the config's problem type and
applies one optax update. It is data-parallel when given a mesh: the batch is split over the
``"data"`` axis and params and optimiser state are replicated, so XLA sums the gradients across
devices.

Optimiser (AST_SPEC §7): torch ``Adam(betas=(0.95, 0.999), weight_decay=5e-7)`` on every param.
torch's Adam ``weight_decay`` is an L2 term added to the gradient *before* the moment estimates
(coupled, not AdamW's decoupled decay), i.e. ``add_decayed_weights`` ahead of ``scale_by_adam``.
Learning rate: an optional stepped warm-up (``lr = floor(step / 50) * 50 / 1000 * base`` for the
first 1000 updates, as the original sets it every 50 steps) times a per-epoch step decay (torch
``MultiStepLR`` with milestones ``range(start, 1000, every)``).

Shape legend: B batch, T frames, F mel bins, C classes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from numpy.typing import NDArray

from ast_jax import metrics as metrics_lib
from ast_jax.augment import add_noise, normalize, roll_time, spec_augment, warp_frequency
from ast_jax.checkpoint import save_pretrained
from ast_jax.config import ASTConfig
from ast_jax.data import Loader
from ast_jax.features import FeatureExtractor
from ast_jax.history import write_history
from ast_jax.inference import default_activation
from ast_jax.model import ASTForAudioClassification
from ast_jax.sharding import batch_sharding, config_for_mesh, replicate
from ast_jax.train_state import TrainState, load_state, save_state

__all__ = [
    "RECIPES",
    "TrainConfig",
    "TrainResult",
    "augment_features",
    "fit",
    "init_params",
    "learning_rate_schedule",
    "loss_fn",
    "make_optimizer",
    "make_predict",
    "make_train_step",
    "predict",
    "resolve_problem_type",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training hyper-parameters. Defaults: the original's optimiser, warm-up and decay, and the
    original README's SpecAugment advice for new data (48 of 128 mel bins, 20% of the frames).

    Attributes:
      epochs: passes over the training set.
      batch_size: examples per micro-batch (per train-step call), over all devices.
      accumulate: micro-batches per optimiser update (gradient accumulation; the gradients are
        averaged), so the effective batch is ``batch_size * accumulate``.
      learning_rate: base learning rate.
      betas: Adam's ``(b1, b2)``.
      eps: Adam's epsilon (torch's default).
      weight_decay: torch-Adam L2 coefficient (added to the gradient).
      warmup_steps: updates of linear warm-up (0 disables).
      warmup_every: the warm-up changes the rate every this many updates (the original: 50).
      lr_decay_start: first epoch (0-based count of finished epochs) at which the rate decays.
      lr_decay_every: epochs between decays.
      lr_decay: decay factor (1.0 disables).
      freqm: SpecAugment frequency mask parameter; None is 3/8 of the mel bins (48 of 128; 0
        disables).
      timem: SpecAugment time mask parameter; None is 20% of ``max_length`` (0 disables).
      mixup: probability of mixing each example with a random partner (0 disables).
      noise: scale of the Speech Commands noise (the original: 0.1; 0 disables).
      time_shift: maximum circular time shift in frames (the original: 10 with noise; 0 disables).
      freq_warp: maximum frequency warp (`ast_jax.augment.warp_frequency`: each example's
        frequency axis scaled by a factor in ``[1 - freq_warp, 1 + freq_warp)``, before
        SpecAugment); not in the original; 0 disables.
      seed: seeds init of new heads, shuffling, augmentation and dropout.
      weight_average: ``(first, last)`` epochs (1-based, inclusive) whose weights are averaged into
        the final "weight-averaged" model, or None. Epochs past ``epochs`` are ignored, so a run
        can stop early and resume with more epochs.
      eval_batch_size: batch size for evaluation.
    """

    epochs: int = 10
    batch_size: int = 32
    accumulate: int = 1
    learning_rate: float = 1e-5
    betas: tuple[float, float] = (0.95, 0.999)
    eps: float = 1e-8
    weight_decay: float = 5e-7
    warmup_steps: int = 1000
    warmup_every: int = 50
    lr_decay_start: int = 5
    lr_decay_every: int = 1
    lr_decay: float = 0.85
    freqm: int | None = None
    timem: int | None = None
    mixup: float = 0.0
    noise: float = 0.0
    time_shift: int = 0
    freq_warp: float = 0.0
    seed: int = 0
    weight_average: tuple[int, int] | None = None
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.weight_average is not None:
            object.__setattr__(self, "weight_average", tuple(self.weight_average))
        for name in ("epochs", "batch_size", "accumulate", "lr_decay_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "time_shift", "lr_decay_start"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.warmup_every < 1:
            raise ValueError(f"warmup_every must be >= 1, got {self.warmup_every}")
        for name in ("freqm", "timem"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.mixup <= 1.0:
            raise ValueError(f"mixup must be in [0, 1], got {self.mixup}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if not 0.0 <= self.freq_warp < 1.0:
            raise ValueError(f"freq_warp must be in [0, 1), got {self.freq_warp}")
        if self.weight_average is not None:
            first, last = self.weight_average
            if not 1 <= first <= last:
                raise ValueError(
                    f"weight_average must be (first, last) epochs with 1 <= first <= last, got "
                    f"{self.weight_average}"
                )

    def freq_mask(self, num_mel_bins: int) -> int:
        """The frequency mask parameter for ``num_mel_bins`` bins."""
        return round(0.375 * num_mel_bins) if self.freqm is None else self.freqm

    def time_mask(self, max_length: int) -> int:
        """The time mask parameter for ``max_length`` frames."""
        return round(0.2 * max_length) if self.timem is None else self.timem

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The original recipes' settings (AST_SPEC §7), to pass as `TrainConfig(**RECIPES[name])`.
RECIPES: dict[str, dict[str, Any]] = {
    "audioset": dict(
        batch_size=12, learning_rate=1e-5, epochs=5, freqm=48, timem=192, mixup=0.5,
        lr_decay_start=2, lr_decay=0.5, weight_average=(1, 5),
    ),
    "audioset_balanced": dict(
        batch_size=12, learning_rate=5e-5, epochs=25, freqm=48, timem=192, mixup=0.5,
        lr_decay_start=10, lr_decay_every=5, lr_decay=0.5, weight_average=(6, 25),
    ),
    "esc50": dict(
        batch_size=48, learning_rate=1e-5, epochs=25, freqm=24, timem=96, mixup=0.0,
        lr_decay_start=5, lr_decay=0.85, warmup_steps=0,
    ),
    "speech_commands": dict(
        batch_size=128, learning_rate=2.5e-4, epochs=30, freqm=48, timem=48, mixup=0.6,
        lr_decay_start=5, lr_decay=0.85, warmup_steps=0, noise=0.1, time_shift=10,
    ),
}  # fmt: skip


# ---- optimiser ---------------------------------------------------------------------------------


def learning_rate_schedule(config: TrainConfig, updates_per_epoch: int) -> optax.Schedule:
    """Learning rate as a function of the number of optimiser updates done.

    ``base * warmup(step) * decay ** (number of milestones <= epoch)``, with ``epoch = step //
    updates_per_epoch`` and milestones ``range(lr_decay_start, 1000, lr_decay_every)`` (torch's
    ``MultiStepLR`` stepped once per epoch; the original's milestone list ends at 1000).
    """
    if updates_per_epoch < 1:
        raise ValueError(f"updates_per_epoch must be >= 1, got {updates_per_epoch}")
    milestones = jnp.arange(config.lr_decay_start, 1000, config.lr_decay_every)

    def schedule(step: jax.Array) -> jax.Array:
        epoch = step // updates_per_epoch
        decay = config.lr_decay ** jnp.sum(milestones <= epoch)
        warm = 1.0
        if config.warmup_steps:
            stair = step // config.warmup_every * config.warmup_every
            warm = jnp.minimum(stair / config.warmup_steps, 1.0)
        return config.learning_rate * warm * decay

    return schedule


def make_optimizer(config: TrainConfig, updates_per_epoch: int) -> optax.GradientTransformation:
    """torch-style Adam with L2 weight decay and the recipe's schedule (see the module docstring),
    wrapped in ``optax.MultiSteps`` when accumulating gradients."""
    optimizer = optax.chain(
        # torch Adam's weight_decay: L2 on the gradient, before the moments (not AdamW).
        optax.add_decayed_weights(config.weight_decay),
        optax.scale_by_adam(b1=config.betas[0], b2=config.betas[1], eps=config.eps),
        optax.scale_by_learning_rate(learning_rate_schedule(config, updates_per_epoch)),
    )
    if config.accumulate > 1:
        optimizer = optax.MultiSteps(optimizer, every_k_schedule=config.accumulate)
    return optimizer


# timm's DeiT init (the original AST's) for the tokens and position table: truncated normal.
_TOKEN_STD = 0.02
_TOKENS = ("cls_token", "distillation_token", "position_embeddings")


def init_params(config: ASTConfig, seed: int, *, scratch: bool = False) -> dict[str, Any]:
    """Random ``ASTForAudioClassification`` params.

    Args:
      config: the model config.
      seed: init seed.
      scratch: for training from scratch. HF zero-initialises the cls/distillation tokens and the
        position table (it only ever fine-tunes); from scratch that stalls training: LayerNorm of
        the all-zero cls token has a ``1/sqrt(eps)`` = 1e6 gradient, and zero positions leave the
        patches unordered. With ``scratch`` they get timm's DeiT init (truncated normal, std
        0.02), as in the original AST.
    """
    dummy = jnp.zeros((1, config.max_length, config.num_mel_bins), jnp.float32)
    params = ASTForAudioClassification(config).init(jax.random.key(seed), dummy)["params"]
    if not scratch:
        return params
    embeddings = dict(params["backbone"]["embeddings"])
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), 1), len(_TOKENS))
    for key, name in zip(keys, _TOKENS, strict=True):
        shape = embeddings[name].shape
        embeddings[name] = _TOKEN_STD * jax.random.truncated_normal(key, -2.0, 2.0, shape)
    return {**params, "backbone": {**params["backbone"], "embeddings": embeddings}}


# ---- loss and step -----------------------------------------------------------------------------


def resolve_problem_type(config: ASTConfig, targets: NDArray[np.floating]) -> str:
    """``config.problem_type``, or HF's rule when unset: one label -> regression; several labels
    -> multi-label if any example carries more than one, else single-label (AST_SPEC §4.7)."""
    if config.problem_type is not None:
        return config.problem_type
    if config.num_labels == 1:
        return "regression"
    if (np.asarray(targets) > 0).sum(-1).max(initial=0) > 1:
        return "multi_label_classification"
    return "single_label_classification"


def loss_fn(logits: jax.Array, targets: jax.Array, mask: jax.Array, problem_type: str) -> jax.Array:
    """Mean loss over the kept examples (``mask`` 1.0), HF semantics (AST_SPEC §4.7).

    Args:
      logits: ``(B, C)``.
      targets: ``(B, C)`` float: one-hot or soft (mixup) class probabilities for single-label
        (softmax cross-entropy, equal to HF's integer-label loss on one-hot targets); multi-hot for
        multi-label (sigmoid BCE, mean over classes); values for regression (MSE, mean over
        outputs).
      mask: ``(B,)`` 1.0 for real examples, 0.0 for padding (HF's ignored label -100).
      problem_type: one of ``ast_jax.config.PROBLEM_TYPES`` except None.

    Returns:
      Scalar float32.

    Raises:
      ValueError: unknown ``problem_type``.
    """
    logits = logits.astype(jnp.float32)
    if problem_type == "single_label_classification":
        per_example = optax.softmax_cross_entropy(logits, targets)  # (B,)
    elif problem_type == "multi_label_classification":
        per_example = optax.sigmoid_binary_cross_entropy(logits, targets).mean(-1)
    elif problem_type == "regression":
        per_example = jnp.square(logits - targets).mean(-1)
    else:
        raise ValueError(
            "problem_type must be 'single_label_classification', 'multi_label_classification' or "
            f"'regression', got {problem_type!r}"
        )
    return jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def augment_features(
    key: jax.Array, features: jax.Array, config: TrainConfig, mean: float, std: float
) -> jax.Array:
    """SpecAugment on the unnormalised ``(B, T, F)`` features, normalise, then noise and time
    shift when enabled (the original's order, AST_SPEC §3); a frequency warp first if enabled."""
    mask_key, noise_key, shift_key = jax.random.split(key, 3)
    freqm, timem = config.freq_mask(features.shape[2]), config.time_mask(features.shape[1])
    x = features
    if config.freq_warp:  # its own key, so runs without it draw the same masks, noise and shift
        x = warp_frequency(jax.random.fold_in(key, 1), x, config.freq_warp)
    x = spec_augment(mask_key, x, freqm, timem)
    x = normalize(x, mean, std)
    if config.noise:
        x = add_noise(noise_key, x, config.noise)
    return roll_time(shift_key, x, config.time_shift)


def _accuracy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    hits = (jnp.argmax(logits, -1) == jnp.argmax(targets, -1)).astype(jnp.float32)
    return jnp.sum(hits * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def make_train_step(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    config: TrainConfig,
    *,
    problem_type: str,
    mean: float,
    std: float,
    mesh: Mesh | None = None,
) -> Callable[..., tuple[Any, Any, dict[str, jax.Array]]]:
    """The jitted train step ``(params, opt_state, batch, rng) -> (params, opt_state, metrics)``.

    Args:
      model: an `ASTForAudioClassification`; with a mesh, built from `config_for_mesh(model_config,
        mesh)`.
      optimizer: from `make_optimizer`.
      config: augmentation settings.
      problem_type: selects the loss (`loss_fn`).
      mean, std: the extractor's normalisation statistics.
      mesh: with a mesh, the batch is expected split over its ``"data"`` axis and params and
        optimiser state replicated (outputs keep that layout); None runs on one device.

    The batch is ``{"features": (B, T, F) unnormalised, "targets": (B, C), "mask": (B,)}``;
    metrics are the batch's ``loss``, ``accuracy`` and the gradient's ``grad_norm``. The params
    and optimiser state passed in are donated (their buffers are reused).
    """

    def step(params, opt_state, batch, rng):
        augment_key, dropout_key = jax.random.split(rng)
        x = augment_features(augment_key, batch["features"], config, mean, std)

        def loss(params):
            logits = model.apply(
                {"params": params}, x, deterministic=False, rngs={"dropout": dropout_key}
            ).logits  # (B, C)
            return loss_fn(logits, batch["targets"], batch["mask"], problem_type), logits

        (value, logits), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {
            "loss": value,
            "accuracy": _accuracy(logits, batch["targets"], batch["mask"]),
            "grad_norm": optax.tree.norm(grads),
        }
        return params, opt_state, metrics

    if mesh is None:
        return jax.jit(step, donate_argnums=(0, 1))
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        step,
        in_shardings=(replicated, replicated, batch_sharding(mesh), replicated),
        out_shardings=(replicated, replicated, replicated),
        donate_argnums=(0, 1),
    )


def make_predict(
    model: nn.Module, activation: str, mean: float, std: float
) -> Callable[[Any, jax.Array], jax.Array]:
    """Jitted ``(params, (B, T, F) unnormalised features) -> (B, C) scores``."""
    functions = {"sigmoid": jax.nn.sigmoid, "softmax": jax.nn.softmax, "none": lambda x: x}

    @jax.jit
    def scores(params, features):
        logits = model.apply({"params": params}, normalize(features, mean, std)).logits
        return functions[activation](logits.astype(jnp.float32))

    return scores


def predict(
    predict_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    features: NDArray[np.float32],
    batch_size: int,
) -> NDArray[np.float32]:
    """Scores ``(B, C)`` of ``(B, T, F)`` features in fixed-size batches (the last one padded, so
    one compilation serves every batch)."""
    outputs = []
    for start in range(0, len(features), batch_size):
        chunk = features[start : start + batch_size]
        padded = np.zeros((batch_size, *features.shape[1:]), np.float32)
        padded[: len(chunk)] = chunk
        outputs.append(np.asarray(predict_fn(params, padded))[: len(chunk)])
    return np.concatenate(outputs)


# ---- the loop ----------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """What `fit` returns.

    Attributes:
      params: the last epoch's params.
      averaged_params: the weight average over ``TrainConfig.weight_average`` epochs, or None.
      history: one dict per epoch (`ast_jax.history` lists the keys).
    """

    params: Any
    averaged_params: Any | None
    history: list[dict[str, Any]]


def _host(tree: Any) -> Any:
    return jax.tree.map(np.asarray, tree)


def _train_epoch(
    step_fn: Callable,
    loader: Loader,
    params: Any,
    opt_state: Any,
    epoch: int,
    key: jax.Array,
    bar: Any,
) -> tuple[Any, Any, dict[str, float]]:
    """One pass over ``loader``; returns the new params and state and the mean batch metrics.

    Step ``i`` of the epoch uses ``fold_in(key, global step)``, so a resumed run replays it."""
    totals = {"loss": 0.0, "accuracy": 0.0}
    for i, batch in enumerate(loader.epoch(epoch)):
        step_key = jax.random.fold_in(key, epoch * loader.steps_per_epoch + i)
        params, opt_state, metrics = step_fn(params, opt_state, batch, step_key)
        for name in totals:
            totals[name] += float(metrics[name])
        bar.update()
        bar.set_postfix(
            loss=f"{totals['loss'] / (i + 1):.4f}", acc=f"{totals['accuracy'] / (i + 1):.3f}"
        )
    return params, opt_state, {k: v / loader.steps_per_epoch for k, v in totals.items()}


def _validate(
    state: TrainState, scores: NDArray[np.float32], targets: NDArray[np.float32]
) -> tuple[TrainState, dict[str, float]]:
    """Metrics of this epoch's scores and of the checkpoint ensemble (mean of all epochs')."""
    state = state.add_predictions(scores)
    record = {f"val_{k}": v for k, v in metrics_lib.evaluate(scores, targets).items()}
    ensemble = metrics_lib.evaluate(state.ensemble_scores(), targets)
    return state, record | {f"ensemble_{k}": v for k, v in ensemble.items()}


def fit(
    config: ASTConfig,
    params: Mapping[str, Any],
    extractor: FeatureExtractor,
    train: tuple[NDArray[np.float32], NDArray[np.float32]],
    validation: tuple[NDArray[np.float32], NDArray[np.float32]] | None,
    train_config: TrainConfig,
    out_dir: str | Path,
    *,
    waveforms: tuple[NDArray[np.float32], NDArray[np.int64]] | None = None,
    mesh: Mesh | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Trains for ``train_config.epochs``, evaluating and checkpointing after every epoch.

    After each epoch: validation metrics of this epoch's weights and of the average of all
    epochs' predictions so far (checkpoint ensemble, ``ensemble_*``), the running weight average
    when enabled, ``history.json``/``history.csv``/``curves.png`` and the full training state
    (``state/``) in ``out_dir``. At the end the model is saved with `save_pretrained` to
    ``out_dir/model`` (and ``out_dir/model_wa`` for the weight average).

    Args:
      config: the model config (labels, problem type).
      params: initial ``ASTForAudioClassification`` params.
      extractor: its normalisation statistics are used and it is saved with the model.
      train: ``(B, T, F)`` unnormalised features (`ast_jax.data.compute_features`) and ``(B, C)``
        targets.
      validation: the same for validation, or None.
      train_config: hyper-parameters.
      out_dir: output directory.
      waveforms: `ast_jax.data.load_waveforms` of the training clips; needed for mixup.
      mesh: data-parallel mesh (``ast_jax.data_mesh()``); None: one device.
      resume: continue from ``out_dir/state`` if it exists.
      progress: show a tqdm progress bar.

    Raises:
      ValueError: batch size not divisible by the mesh size, or a state that does not match.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    tc = train_config
    if mesh is not None and tc.batch_size % mesh.size:
        raise ValueError(
            f"batch_size {tc.batch_size} must be a multiple of the {mesh.size} devices"
        )
    problem_type = resolve_problem_type(config, train[1])
    model = ASTForAudioClassification(config_for_mesh(config, mesh))
    loader = Loader(
        *train,
        batch_size=tc.batch_size,
        seed=tc.seed,
        mixup=tc.mixup,
        waveforms=waveforms,
        extractor=extractor,
        sharding=None if mesh is None else batch_sharding(mesh),
    )
    updates_per_epoch = max(1, loader.steps_per_epoch // tc.accumulate)
    schedule = learning_rate_schedule(tc, updates_per_epoch)
    optimizer = make_optimizer(tc, updates_per_epoch)
    step_fn = make_train_step(
        model, optimizer, tc, problem_type=problem_type, mean=extractor.mean, std=extractor.std,
        mesh=mesh,
    )  # fmt: skip
    activation = default_activation(dataclasses.replace(config, problem_type=problem_type))
    predict_fn = make_predict(model, activation, extractor.mean, extractor.std)
    # Host copies: the step donates its inputs, which must not be the caller's buffers.
    state = TrainState.start(_host(params), optimizer.init(_host(params)), tc.seed)
    if resume and (out_dir / "state").is_dir():
        state = load_state(out_dir / "state", state, tc)
    params, opt_state = state.params, state.opt_state
    if mesh is not None:
        params, opt_state = replicate(params, mesh), replicate(opt_state, mesh)
    for epoch in range(state.epoch, tc.epochs):
        started = time.perf_counter()
        with tqdm(
            total=loader.steps_per_epoch, disable=not progress, unit="batch", leave=False,
            desc=f"epoch {epoch + 1}/{tc.epochs}",
        ) as bar:  # fmt: skip
            params, opt_state, train_metrics = _train_epoch(
                step_fn, loader, params, opt_state, epoch, state.key, bar
            )
        record = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * loader.steps_per_epoch,
            "learning_rate": float(schedule(epoch * updates_per_epoch)),  # at the epoch's start
            "train_loss": train_metrics["loss"],
            "train_accuracy": train_metrics["accuracy"],
        }
        host_params = _host(params)
        state = state.after_epoch(host_params, _host(opt_state), epoch + 1)
        first, last = tc.weight_average or (0, -1)
        if first <= epoch + 1 <= last:
            state = state.add_to_average(host_params)
        if validation is not None:
            scores = predict(predict_fn, params, validation[0], tc.eval_batch_size)
            state, validation_record = _validate(state, scores, validation[1])
            record |= validation_record
        record["seconds"] = time.perf_counter() - started
        state = state.with_record(record)
        save_state(out_dir / "state", state, tc)
        write_history(out_dir, state.history)
        if progress:
            shown = {k: round(v, 4) for k, v in record.items() if isinstance(v, float)}
            tqdm.write(f"epoch {epoch + 1}: {shown}")
    averaged = state.averaged_params()
    save_pretrained(out_dir / "model", config, state.params, feature_extractor=extractor)
    if averaged is not None:
        save_pretrained(out_dir / "model_wa", config, averaged, feature_extractor=extractor)
    return TrainResult(state.params, averaged, state.history)
