"""Hub ids from the core install, as transformers users know them: the shared hub cache (a
snapshot transformers downloaded is reused, and the other way round), `revision=`, `subfolder=`,
offline mode (`local_files_only=True`, `HF_HUB_OFFLINE=1`, `TRANSFORMERS_OFFLINE=1`) and a hub that
cannot be reached.

No test here touches the network: the snapshots are written into a temporary hub cache in the
layout huggingface_hub keeps (`models--org--name/snapshots/<commit>/`, `refs/<name>` holding the
commit), which is what a download leaves behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import transformers
from flax.traverse_util import flatten_dict

from ast_jax import ASTConfig, FeatureExtractor, load_feature_extractor, load_pretrained

REPO_ID = "MIT/ast-finetuned-audioset-10-10-0.4593"
MAIN = "0123456789abcdef0123456789abcdef01234567"
TAGGED = "fedcba9876543210fedcba9876543210fedcba98"
ROOT = Path(__file__).resolve().parents[1]


def _snapshot(cache: Path, repo_id: str, commit: str, refs: tuple[str, ...] = ()) -> Path:
    """An empty snapshot folder of `repo_id` at `commit` in hub cache `cache`, named by `refs`."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture(scope="module")
def hub_cache(hf_model, save_hf, tmp_path_factory) -> Path:
    """A hub cache holding a tiny transformers checkpoint under `REPO_ID`: at `main` (5 labels,
    plus the same files in a subfolder "variant") and at tag `v1` (3 labels)."""
    cache = tmp_path_factory.mktemp("hub")
    main = _snapshot(cache, REPO_ID, MAIN, refs=("main",))
    save_hf(hf_model(), main)
    transformers.ASTFeatureExtractor(max_length=100, num_mel_bins=48).save_pretrained(main)
    save_hf(hf_model(), main / "variant")
    transformers.ASTFeatureExtractor(max_length=100, num_mel_bins=48, mean=-1.0).save_pretrained(
        main / "variant"
    )
    tagged = _snapshot(cache, REPO_ID, TAGGED, refs=("v1",))
    save_hf(hf_model(num_labels=3), tagged)
    return cache


def _trees_equal(a, b) -> bool:
    a, b = flatten_dict(a, sep="/"), flatten_dict(b, sep="/")
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_hub_client_is_a_core_dependency():
    # (tomllib is Python 3.11+; the package supports 3.10)
    text = (ROOT / "pyproject.toml").read_text()
    core = re.search(r"^dependencies = \[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    assert core and re.search(r'^\s*"huggingface_hub>=', core.group(1), re.MULTILINE)


def test_cached_snapshot_loads_with_local_files_only(hub_cache):
    config, params = load_pretrained(REPO_ID, cache_dir=hub_cache, local_files_only=True)
    directory = hub_cache / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / MAIN
    assert _trees_equal(params, load_pretrained(directory)[1])
    assert config.num_labels == 5
    extractor = FeatureExtractor.from_pretrained(
        REPO_ID, cache_dir=hub_cache, local_files_only=True
    )
    assert extractor == FeatureExtractor(max_length=100, num_mel_bins=48)
    assert ASTConfig.from_pretrained(REPO_ID, cache_dir=hub_cache, local_files_only=True) == config
    # transformers reads the same cache
    theirs = transformers.AutoConfig.from_pretrained(
        REPO_ID, cache_dir=hub_cache, local_files_only=True
    )
    assert theirs.num_labels == 5


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_environment_uses_the_cache_only(hub_cache, monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    config, _ = load_pretrained(REPO_ID, cache_dir=hub_cache)
    assert config.num_labels == 5
    assert load_feature_extractor(REPO_ID, cache_dir=hub_cache).max_length == 100
    with pytest.raises(OSError, match="offline mode"):
        load_pretrained("MIT/not-in-the-cache", cache_dir=hub_cache)


def test_revision_picks_a_branch_tag_or_commit(hub_cache):
    def labels(revision):
        options = {"cache_dir": hub_cache, "local_files_only": True, "revision": revision}
        return ASTConfig.from_pretrained(REPO_ID, **options).num_labels

    assert labels(None) == labels("main") == labels(MAIN) == 5
    assert labels("v1") == labels(TAGGED) == 3
    config, params = load_pretrained(
        REPO_ID, revision="v1", cache_dir=hub_cache, local_files_only=True
    )
    assert config.num_labels == 3 and params["classifier"]["dense"]["bias"].shape == (3,)
    with pytest.raises(OSError, match="could not be downloaded from the Hugging Face hub"):
        ASTConfig.from_pretrained(
            REPO_ID, revision="v2", cache_dir=hub_cache, local_files_only=True
        )


def test_subfolder(hub_cache):
    options = {"cache_dir": hub_cache, "local_files_only": True, "subfolder": "variant"}
    assert FeatureExtractor.from_pretrained(REPO_ID, **options).mean == -1.0
    assert load_feature_extractor(REPO_ID, **options).mean == -1.0
    _, params = load_pretrained(REPO_ID, **options)
    assert _trees_equal(
        params, load_pretrained(REPO_ID, cache_dir=hub_cache, local_files_only=True)[1]
    )


def test_cached_snapshot_is_used_when_the_hub_cannot_be_reached(hub_cache, tmp_path):
    # A hub endpoint that refuses connections, in a fresh process (huggingface_hub reads its
    # settings at import): the cached snapshot loads, for ast-jax and for transformers alike.
    code = (
        "import json, ast_jax, transformers\n"
        f"config, params = ast_jax.load_pretrained({REPO_ID!r})\n"
        f"extractor = ast_jax.FeatureExtractor.from_pretrained({REPO_ID!r})\n"
        f"theirs = transformers.AutoConfig.from_pretrained({REPO_ID!r})\n"
        "print(json.dumps([config.num_labels, extractor.max_length, theirs.num_labels]))\n"
    )
    env = {
        **os.environ,
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HUB_CACHE": str(hub_cache),
        "HF_HUB_ETAG_TIMEOUT": "2",
        "JAX_PLATFORMS": "cpu",
    }
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [5, 100, 5]
    # and an id that is in no cache fails clearly, naming the hub
    missing = code.replace(REPO_ID, "MIT/not-in-the-cache")
    result = subprocess.run(
        [sys.executable, "-c", missing], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode != 0
    assert (
        "could not be downloaded from the Hugging Face hub or found in its cache" in result.stderr
    )
