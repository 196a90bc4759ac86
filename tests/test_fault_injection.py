"""Every writer, killed at every step, leaves the old complete output or the new one, never a mix.

A kill is simulated in-process: the N-th disk step (a file flushed, renamed or removed) raises
`Killed`, and from then on nothing reaches the disk (clean-up code included), as after ``kill -9``
at that instant. Each writer runs once to count its steps, then once per step with the kill there;
after each, what a reader sees must equal the old output or the new one. The training state
(written by orbax's threads and tensorstore, outside these calls) is killed for real with
``kill -9``, while a state is being written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np
import pytest
import soundfile
from flax.traverse_util import flatten_dict
from safetensors import safe_open

import ast_jax.files
from ast_jax.checkpoints.pretrained import export_hf, load_pretrained, save_pretrained
from ast_jax.cli.main import main
from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.inference.embeddings import save_embeddings
from ast_jax.inference.results import Embedding
from ast_jax.training.state import StateCheckpoints


class Killed(BaseException):
    """The simulated kill; a BaseException, so that no ``except Exception`` handles it."""


class Killer:
    """Counts disk steps; kills at step ``at`` (None: never) and freezes the disk after it."""

    def __init__(self, at: int | None) -> None:
        self.at, self.steps, self.dead = at, 0, False

    def step(self, real: Callable, *args, **kwargs):
        if self.dead:
            return None
        self.steps += 1
        if self.steps == self.at:
            self.dead = True
            raise Killed
        return real(*args, **kwargs)

    def cleanup(self, real: Callable, *args, **kwargs):
        return None if self.dead else real(*args, **kwargs)


_DISK_CALLS = [
    (os, "fsync", "step"), (os, "replace", "step"), (os, "rename", "step"),
    (ast_jax.files, "_exchange", "step"), (shutil, "rmtree", "step"),
    (os, "unlink", "cleanup"), (os, "rmdir", "cleanup"), (os, "chmod", "cleanup"),
]  # fmt: skip


def _route(monkeypatch: pytest.MonkeyPatch, killer: Killer) -> None:
    """Routes every mutating disk call of the writers through ``killer``."""
    for module, name, kind in _DISK_CALLS:
        real, hook = getattr(module, name), getattr(killer, kind)
        monkeypatch.setattr(module, name, lambda *a, _r=real, _h=hook, **k: _h(_r, *a, **k))


def _views_after_kills(
    monkeypatch: pytest.MonkeyPatch,
    write_old: Callable[[], object],
    write_new: Callable[[], object],
    read: Callable[[], Hashable],
) -> tuple[Hashable, Hashable, list[Hashable]]:
    """Writes the old output, then the new one killed at each of its steps in turn.

    Returns:
      ``read()`` of the old output, of the new one (written without a kill), and after each kill.
    """
    write_old()
    old = read()
    with monkeypatch.context() as patch:
        counter = Killer(None)
        _route(patch, counter)
        write_new()
    new = read()
    assert old != new
    assert counter.steps >= 2, counter.steps  # the writer really goes through the routed calls
    views = []
    for at in range(1, counter.steps + 1):
        write_old()
        with monkeypatch.context() as patch, pytest.raises(Killed):
            _route(patch, Killer(at))
            write_new()
        views.append(read())
    return old, new, views


def _kill_at_every_step(
    monkeypatch: pytest.MonkeyPatch,
    write_old: Callable[[], object],
    write_new: Callable[[], object],
    read: Callable[[], Hashable],
) -> None:
    """After a kill at any step of ``write_new``, ``read()`` gives the old output or the new one:
    the old one up to some step, the new one after it, never back and forth."""
    old, new, views = _views_after_kills(monkeypatch, write_old, write_new, read)
    for at, view in enumerate(views, start=1):
        assert view in (old, new), f"killed at step {at} of {len(views)}: a mix {view}"
    is_new = [view == new for view in views]
    assert is_new == sorted(is_new) and not is_new[0], is_new


def _checkpoint_view(directory: Path) -> Hashable:
    """What a reader of a checkpoint directory gets: labels, a digest of every weight, and the
    normalisation mean of its extractor (None without one)."""
    config, params = load_pretrained(directory)
    weights = tuple(float(np.sum(value)) for _, value in sorted(flatten_dict(params).items()))
    extractor = directory / "preprocessor_config.json"
    mean = FeatureExtractor.from_json_file(extractor).mean if extractor.is_file() else None
    return config.labels, weights, mean


def test_save_pretrained_killed_at_every_step(monkeypatch, tmp_path, tiny_config, tiny_params):
    target = tmp_path / "model"
    extractor = FeatureExtractor(max_length=tiny_config.max_length, mean=-1.0)
    # The new checkpoint has no extractor: the old one's must not survive beside it.
    _kill_at_every_step(
        monkeypatch,
        lambda: save_pretrained(target, tiny_config, tiny_params(0), feature_extractor=extractor),
        lambda: save_pretrained(target, tiny_config, tiny_params(1)),
        lambda: _checkpoint_view(target),
    )


def test_convert_killed_at_every_step(monkeypatch, tmp_path, tiny_config, tiny_params):
    source = export_hf(tmp_path / "hf", tiny_config, tiny_params(1))  # no preprocessor config
    target = tmp_path / "converted"
    extractor = FeatureExtractor(max_length=tiny_config.max_length, mean=-1.0)

    def convert() -> None:
        assert main(["convert", str(source), "-o", str(target)]) == 0

    _kill_at_every_step(
        monkeypatch,
        lambda: save_pretrained(target, tiny_config, tiny_params(0), feature_extractor=extractor),
        convert,
        lambda: _checkpoint_view(target),
    )


def _embeddings(seed: int, count: int) -> list[Embedding]:
    rng = np.random.default_rng(seed)
    return [
        Embedding(
            source=f"clip{seed}_{i}.wav",
            pooled=rng.normal(size=4).astype(np.float32),
            window_pooled=rng.normal(size=(2, 4)).astype(np.float32),
            window_times=np.array([[0.0, 1.0], [1.0, 2.0]]),
            duration=2.0,
        )
        for i in range(count)
    ]


def _embedding_view(path: Path) -> Hashable:
    """The sources and a digest of the pooled embeddings an embedding file holds."""
    if path.suffix == ".npz":
        with np.load(path) as archive:
            return tuple(archive["files"]), float(archive["pooled"].sum())
    with safe_open(path, "np") as file:
        sources = tuple(json.loads(file.metadata()["files"]))
        return sources, float(file.get_tensor("pooled").sum())


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_embeddings_killed_at_every_step(monkeypatch, tmp_path, suffix):
    target = tmp_path / f"embeddings{suffix}"
    _kill_at_every_step(
        monkeypatch,
        lambda: save_embeddings(target, _embeddings(0, 3)),
        lambda: save_embeddings(target, _embeddings(1, 2)),
        lambda: _embedding_view(target),
    )


def test_features_killed_at_every_step_leave_whole_files(monkeypatch, tmp_path, tone):
    """``features`` writes one file per input: each is the old one or the new one, whole."""
    clips = []
    for name, frequency in [("a", 300.0), ("b", 900.0)]:
        clips.append(tmp_path / f"{name}.wav")
        soundfile.write(clips[-1], tone(frequency, 0.5), 16000)
    out = tmp_path / "out"
    arguments = ["features", *map(str, clips), "-o", str(out), "--preset", "speech_commands"]

    def write_old() -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        for clip in clips:
            np.save(out / f"{clip.stem}.npy", np.zeros((128, 128), np.float32))

    def write_new() -> None:
        assert main(arguments) == 0

    def read() -> Hashable:
        return tuple(float(np.load(out / f"{clip.stem}.npy").sum()) for clip in clips)

    old_files, new_files, views = _views_after_kills(monkeypatch, write_old, write_new, read)
    for at, files in enumerate(views, start=1):
        for old, new, now in zip(old_files, new_files, files, strict=True):
            assert now in (old, new), f"killed at step {at}: a partial file"


def test_export_killed_at_every_step(monkeypatch, tmp_path, tiny_checkpoint):
    target = tmp_path / "artifact"

    def export(input: str) -> None:
        assert main(["export", str(tiny_checkpoint), "-o", str(target), "--input", input]) == 0

    def read() -> Hashable:
        """The input kind, if the metadata describes the artifact beside it (serialisation is
        not byte-reproducible between exports, so its digest cannot tell old from new)."""
        metadata = json.loads((target / "metadata.json").read_text())
        data = (target / "model.stablehlo").read_bytes()
        assert metadata["sha256"] == hashlib.sha256(data).hexdigest(), "a mix"
        return metadata["input"]

    _kill_at_every_step(monkeypatch, lambda: export("features"), lambda: export("waveform"), read)


def test_training_state_killed_while_saving_keeps_a_loadable_state(
    tmp_path, trainable_config, synthetic_task
):
    """``kill -9`` while orbax writes a state (its temporary directory exists): the newest
    complete state loads, and ``--resume`` finishes the run."""
    _, targets = synthetic_task(24, 0)
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for i, target in enumerate(targets):
        folder = root / trainable_config.labels[int(target.argmax())]
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(folder / f"{i}.wav", 0.1 * rng.standard_normal(4000), 16000)
    config = tmp_path / "config.json"
    trainable_config.to_json_file(config)
    out = tmp_path / "run"
    arguments = [
        sys.executable, "-m", "ast_jax.cli", "finetune", str(config), str(root), "-o", str(out),
        "--epochs", "3", "--batch-size", "4", "--warmup-steps", "0", "--save-every", "1",
        "--keep", "2", "-q",
    ]  # fmt: skip
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    process = subprocess.Popen(arguments, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    state = out / "state"
    while not any("tmp" in entry.name for entry in state.glob("*")) or not any(
        entry.name.isdigit() for entry in state.glob("*")
    ):  # a state in progress, after at least one complete one
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.005)
    process.kill()
    process.wait()
    assert not (out / "model").exists()
    checkpoints = StateCheckpoints(state)
    assert checkpoints.latest() is not None
    checkpoints.close()
    resumed = subprocess.run([*arguments, "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert len(json.loads((out / "history.json").read_text())) == 3
    assert set(load_pretrained(out / "model")[0].labels) == set(trainable_config.labels)
