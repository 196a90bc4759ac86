"""Data-parallel inference: the mesh helpers, and sharded == single-device on 8 simulated CPUs."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from ast_jax.model.attention import PER_HEAD_MIN_TOKENS, attention_rule, resolve_attention
from ast_jax.runtime.sharding import (
    DATA_AXIS,
    batch_sharding,
    data_mesh,
    padded_batch_size,
    process_shard,
    replicate,
)

ROOT = Path(__file__).parents[1]
# Every row goes through the same per-example computation on each device; only XLA's matmul blocking
# for a different per-device batch moves the last float32 bits (seen: 2e-8 on scores, 6e-7 on
# token states of magnitude ~1).
SHARDED_ATOL = 1e-5


def test_mesh_helpers_on_one_device():
    mesh = data_mesh()
    assert mesh.axis_names == (DATA_AXIS,)
    assert mesh.size == len(jax.local_devices())
    assert padded_batch_size(5, data_mesh(jax.local_devices()[:1])) == 5
    assert process_shard(["a", "b", "c"]) == ["a", "b", "c"]  # one process holds everything
    x = jax.device_put(np.arange(8.0), batch_sharding(mesh))
    assert x.sharding.spec == jax.sharding.PartitionSpec(DATA_AXIS)
    tree = replicate({"w": np.ones(3)}, mesh)
    assert tree["w"].sharding.is_fully_replicated
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        padded_batch_size(0, mesh)
    with pytest.raises(ValueError, match="at least one device"):
        data_mesh([])


def test_resolve_attention_for_a_mesh_keeps_explicit_choices(tiny_config):
    one = data_mesh(jax.local_devices()[:1])
    assert tiny_config.seq_len >= PER_HEAD_MIN_TOKENS  # long enough for the per-head loop on a CPU
    assert resolve_attention(tiny_config, mesh=one).attention == "per_head"
    assert resolve_attention(tiny_config, platform="tpu").attention == "xla"
    assert resolve_attention(tiny_config, platform="gpu").attention == "xla"
    per_head = dataclasses.replace(tiny_config, attention="per_head")
    assert resolve_attention(per_head, mesh=one) is per_head
    # The pipelines' resolution and the model's per-platform "auto" ask the same rule.
    for platform, name in [("cpu", "cpu"), ("gpu", "cuda"), ("cuda", "cuda"), ("tpu", "tpu")]:
        chosen = resolve_attention(tiny_config, platform=platform).attention
        assert chosen == attention_rule(tiny_config, name)
    assert attention_rule(tiny_config, "cpu", devices=8) == "xla"  # a split batch stays fused


_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    from ast_jax import AudioClassifier, data_mesh, load_feature_extractor, load_pretrained

    # argv: a checkpoint directory, an .npz of the clips
    config, params = load_pretrained(sys.argv[1])
    extractor = load_feature_extractor(sys.argv[1])
    with np.load(sys.argv[2]) as archive:
        clips = [archive[f"arr_{i}"] for i in range(len(archive.files))]
    sharded = AudioClassifier(config, params, extractor, batch_size=5)
    single = AudioClassifier(
        config, params, extractor, batch_size=5, mesh=data_mesh(jax.devices()[:1])
    )
    step_output = sharded._step("classify")(sharded._params, sharded._device_batch(
        np.zeros((1, config.max_length, config.num_mel_bins), np.float32)))["scores"]
    def scores(classifier):
        return np.concatenate([r.window_scores for r in classifier.classify(clips)]).tolist()
    def embeddings(classifier):
        return np.concatenate([e.last_hidden_state for e in classifier.embed(clips, tokens=True)])
    tokens_sharded, tokens_single = embeddings(sharded), embeddings(single)
    print(json.dumps({
        "devices": jax.device_count(),
        "mesh": [sharded.mesh.size, single.mesh.size],
        "attention": [sharded.config.attention, single.config.attention],
        "batch_size": [sharded.batch_size, single.batch_size],
        "output_devices": len(step_output.sharding.device_set),
        "scores": [scores(sharded), scores(single)],
        "tokens_max_diff": float(np.abs(tokens_sharded - tokens_single).max()),
    }))
    """
)


def test_sharded_equals_single_device_on_8_cpu_devices(tiny_checkpoint, tone, tmp_path):
    clips = [tone(200.0 + 100 * i, 0.4 * i + 0.3) for i in range(9)]  # 1 to 3 windows each
    np.savez(tmp_path / "clips.npz", *clips)
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-c", _SCRIPT, str(tiny_checkpoint), str(tmp_path / "clips.npz")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["devices"] == 8
    assert report["mesh"] == [8, 1]
    assert report["attention"] == ["xla", "per_head"]  # no per-head loop over a split batch
    assert report["batch_size"] == [8, 5]  # padded up to a multiple of the device count
    assert report["output_devices"] == 8
    sharded, single = (np.array(s) for s in report["scores"])
    assert sharded.shape == (18, 5)  # 1 + 2 + 3 windows, three clips each
    np.testing.assert_allclose(sharded, single, atol=SHARDED_ATOL)
    assert report["tokens_max_diff"] <= SHARDED_ATOL
