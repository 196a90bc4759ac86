"""A data-parallel train step on 8 simulated CPU devices equals the single-device step.

Runs in a subprocess: the device count is fixed when JAX starts.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ast_jax import save_pretrained

SCRIPT = r"""
import sys

import numpy as np
import jax
from flax.traverse_util import flatten_dict

from ast_jax import load_feature_extractor, load_pretrained
from ast_jax.model.modules import ASTForAudioClassification
from ast_jax.runtime.sharding import batch_sharding, data_mesh, replicate
from ast_jax.training.config import TrainConfig
from ast_jax.training.optimizer import make_optimizer
from ast_jax.training.step import make_train_step

# argv: a checkpoint directory (model config, initial params, extractor), an .npz of the batch
model_config = load_pretrained(sys.argv[1])[0]
extractor = load_feature_extractor(sys.argv[1])


def init_params():
    return load_pretrained(sys.argv[1])[1]


# Sums over the batch are split into per-device partial sums, then all-reduced: float32
# summation order differs, nothing else. lr = eps = 1 makes Adam's first update ~g / (|g| + 1),
# linear in the gradient (the default eps would turn the rounding noise of zero-gradient params,
# such as the key biases, into lr-sized sign steps); updates are O(0.01..1).
TOL = 1e-5

assert jax.device_count() == 8, jax.devices()
with np.load(sys.argv[2]) as data:
    features, targets = data["features"], data["targets"]
batch = {"features": features, "targets": targets, "mask": np.ones(16, np.float32)}
config = TrainConfig(
    learning_rate=1.0, eps=1.0, warmup_steps=0, freqm=4, timem=6, noise=0.1, time_shift=2
)
optimizer = make_optimizer(config, 10)
model = ASTForAudioClassification(model_config)
kwargs = dict(problem_type="single_label_classification", mean=extractor.mean, std=extractor.std)
key = jax.random.key(7)

single = make_train_step(model, optimizer, config, **kwargs)
params = init_params()
expected, _, expected_metrics = single(params, optimizer.init(params), batch, key)

mesh = data_mesh()
sharded = make_train_step(model, optimizer, config, mesh=mesh, **kwargs)
params = replicate(init_params(), mesh)
got, state, metrics = sharded(
    params, replicate(optimizer.init(init_params()), mesh),
    jax.device_put(batch, batch_sharding(mesh)), key,
)
for leaf in jax.tree.leaves(got):
    assert leaf.sharding.is_fully_replicated, leaf.sharding
expected, got = flatten_dict(expected, sep="/"), flatten_dict(got, sep="/")
for name in expected:
    np.testing.assert_allclose(
        np.asarray(got[name]), np.asarray(expected[name]), atol=TOL, err_msg=name
    )
for name in expected_metrics:
    np.testing.assert_allclose(metrics[name], expected_metrics[name], rtol=TOL, err_msg=name)
print("ok")
"""


def test_sharded_step_equals_single_device_step(
    trainable_config, trainable_params, trainable_extractor, synthetic_task, tmp_path
):
    checkpoint = save_pretrained(
        tmp_path / "model",
        trainable_config,
        trainable_params(),
        feature_extractor=trainable_extractor,
    )
    features, targets = synthetic_task(16, seed=3)
    np.savez(tmp_path / "batch.npz", features=features, targets=targets)
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(Path(__file__).parents[1]),
    }
    command = [sys.executable, "-c", SCRIPT, str(checkpoint), str(tmp_path / "batch.npz")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
