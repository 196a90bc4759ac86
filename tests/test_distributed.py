"""Training across JAX processes: ``ast-jax finetune`` in 2 processes of 2 CPU devices each equals
1 process of 4 devices, and a training state moves between the two layouts.

The processes run on 127.0.0.1 with `jax.distributed` and CPU collectives (gloo); each simulates
its devices with ``--xla_force_host_platform_device_count``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
from flax.traverse_util import flatten_dict

from ast_jax.checkpoints.pretrained import load_pretrained
from ast_jax.training.state import StateCheckpoints

RATE = 16000
# The 4 devices hold the same rows either way; what differs is how XLA reduces the gradient across
# processes (gloo) versus within one: float32 rounding of the sums, grown by a few steps of Adam
# with lr 1e-3. Measured: about 1e-6; a wrong shard or a skipped batch moves params by ~1e-3.
PROCESS_TOL = 1e-5
# Except the key biases: softmax ignores them, so their gradient is rounding noise, which Adam
# (eps 1e-8) turns into steps of up to the learning rate either way: bounded by lr * updates.
LEARNING_RATE, UPDATES = 1e-3, 6
EPOCHS = 2


@pytest.fixture(scope="module")
def dataset(tone, trainable_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    for label, frequency in (("low", 400.0), ("high", 3000.0)):
        (root / label).mkdir()
        for i in range(8):
            clip = tone(frequency * (1 + 0.05 * i), 0.3 + 0.02 * i, RATE, amplitude=0.3)
            soundfile.write(root / label / f"{i}.wav", clip, RATE)
    config = root / "config.json"
    config.write_text(json.dumps(trainable_config.to_hf_dict()))
    return root, config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _finetune(dataset, out, *, processes: int, devices: int, epochs: int, resume=False):
    """Runs ``ast-jax finetune`` in ``processes`` processes of ``devices`` CPU devices each."""
    root, config = dataset
    arguments = [
        sys.executable, "-m", "ast_jax.cli", "finetune", str(config), str(root), "-o", str(out),
        "--epochs", str(epochs), "--batch-size", "4", "--lr", str(LEARNING_RATE),
        "--warmup-steps", "0", "--val-fraction", "0.25", "--mixup", "0.5", "--seed", "3", "-q",
    ]  # fmt: skip
    if resume:
        arguments.append("--resume")
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    if processes == 1:
        commands = [[*arguments, "--data-parallel"]]
    else:
        port = _free_port()
        flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(processes)]
        commands = [[*arguments, *flags, "--process-id", str(i)] for i in range(processes)]
    running = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for command in commands
    ]
    for process in running:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
    return load_pretrained(out / "model")[1]


def _assert_close(ours, theirs, tol):
    flat_ours, flat_theirs = flatten_dict(ours, sep="/"), flatten_dict(theirs, sep="/")
    assert flat_ours.keys() == flat_theirs.keys()
    for name, value in flat_theirs.items():
        ours_value = flat_ours[name]
        if name.endswith("attention/qkv/bias"):
            width = value.shape[0] // 3  # [q | k | v]
            keys = slice(width, 2 * width)
            np.testing.assert_allclose(
                ours_value[keys], value[keys], rtol=0, atol=LEARNING_RATE * UPDATES, err_msg=name
            )
            ours_value, value = np.delete(ours_value, keys), np.delete(value, keys)
        np.testing.assert_allclose(ours_value, value, rtol=0, atol=tol, err_msg=name)


@pytest.fixture(scope="module")
def one_process(dataset, tmp_path_factory):
    return _finetune(dataset, tmp_path_factory.mktemp("one"), processes=1, devices=4, epochs=EPOCHS)


def test_two_processes_train_like_one(dataset, one_process, tmp_path):
    two = _finetune(dataset, tmp_path / "two", processes=2, devices=2, epochs=EPOCHS)
    _assert_close(two, one_process, PROCESS_TOL)
    history = json.loads((tmp_path / "two" / "history.json").read_text())
    assert len(history) == EPOCHS  # written once, by process 0


@pytest.mark.parametrize(("first", "then"), [(2, 1), (1, 2)])
def test_a_state_moves_between_process_counts(dataset, one_process, tmp_path, first, then):
    out = tmp_path / "moved"
    _finetune(dataset, out, processes=first, devices=4 // first, epochs=1)
    assert StateCheckpoints(out / "state").latest() == 3  # 12 clips, batches of 4: 3 steps
    resumed = _finetune(dataset, out, processes=then, devices=4 // then, epochs=EPOCHS, resume=True)
    _assert_close(resumed, one_process, PROCESS_TOL)


def test_a_run_killed_mid_epoch_resumes_exactly(dataset, tmp_path):
    """``kill -9`` once the state of step 4 (of 6) is on disk; ``--resume`` then ends bit-identical
    to a run that was never interrupted (one process, one device: the same programs)."""
    root, config = dataset
    arguments = [
        sys.executable, "-m", "ast_jax.cli", "finetune", str(config), str(root),
        "--epochs", str(EPOCHS), "--batch-size", "4", "--lr", str(LEARNING_RATE),
        "--warmup-steps", "0", "--val-fraction", "0.25", "--mixup", "0.5", "--seed", "3", "-q",
        "--save-every", "1", "--keep", "10",
    ]  # fmt: skip
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    whole = tmp_path / "whole"
    subprocess.run([*arguments, "-o", str(whole)], env=env, check=True, capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen([*arguments, "-o", str(killed)], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (killed / "state" / "4").is_dir():  # orbax renames a state into place when done
        assert process.poll() is None and time.monotonic() < deadline, "no state 4 appeared"
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert not (killed / "model").exists()  # it did not finish
    latest = StateCheckpoints(killed / "state").latest()
    assert 4 <= latest < 3 * EPOCHS
    subprocess.run(
        [*arguments, "-o", str(killed), "--resume"], env=env, check=True, capture_output=True
    )
    ours, theirs = load_pretrained(killed / "model")[1], load_pretrained(whole / "model")[1]
    for name, value in flatten_dict(theirs, sep="/").items():
        np.testing.assert_array_equal(flatten_dict(ours, sep="/")[name], value, err_msg=name)
    history = json.loads((killed / "history.json").read_text())
    expected = json.loads((whole / "history.json").read_text())
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in expected]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in history] == strip
