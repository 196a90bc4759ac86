"""The package's floors: which modules may import which, what ``import ast_jax`` loads, and the
public names (new and old paths) that must keep resolving."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import ast_jax
from ast_jax._legacy import LEGACY_MODULES
from ast_jax.config import ATTENTIONS
from ast_jax.model.attention import ATTENTION_KERNELS

PACKAGE = Path(ast_jax.__file__).parent
# Floor of each top-level part of the package; a module may import its own part and lower floors.
# Parts on the same floor (inference, training) may not import each other.
FLOORS = {
    # The ground floor, below the base: the hub client and atomic file writes, which import
    # nothing from the package, so that the config and the front end can read and write files.
    "hub": -1,
    "files": -1,
    "config": 0,
    "exports": 0,
    "runtime": 1,
    "frontend": 2,
    "model": 3,
    "checkpoints": 4,
    "plots": 5,
    "inference": 6,
    "training": 6,
    "export": 6,
    "cli": 7,
}
# The package's front door: re-exports and old module paths, never the command line.
API = {"__init__", "_legacy"}


def _part(module: str) -> str:
    """``ast_jax.model.layers`` -> ``model``."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> set[str]:
    """Every ``ast_jax`` module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    # String module paths (lazy export tables) count too.
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith("ast_jax.") and " " not in node.value:
                found.add(node.value)
    return {name for name in found if name.startswith("ast_jax.")}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def test_every_part_of_the_package_has_a_floor():
    parts = {_part(name) for name in MODULES} - API
    assert parts == set(FLOORS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_lower_floors_never_import_higher_ones(module):
    part = _part(module)
    problems = []
    for target in sorted(_imports(MODULES[module])):
        target_part = _part(target)
        if target_part not in FLOORS:  # e.g. ``ast_jax.safetensors`` in prose
            continue
        if target_part == "cli" and part != "cli":
            problems.append(f"{target}: nothing outside the command line imports it")
        elif part in API or target_part == part:
            continue
        elif FLOORS[target_part] > FLOORS[part]:
            problems.append(f"{target}: a higher floor ({target_part} over {part})")
        elif FLOORS[target_part] == FLOORS[part]:
            problems.append(f"{target}: a sibling on the same floor ({target_part} and {part})")
    assert not problems, f"{module} imports:\n" + "\n".join(problems)


def test_import_ast_jax_loads_nothing_heavy():
    code = (
        "import json, sys, ast_jax\n"
        "heavy = ('jax', 'flax', 'optax', 'matplotlib', 'tqdm', 'grain', 'torch', 'transformers')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


# The optional uses of torch: `torch.load(weights_only=True)` for a `pytorch_model.bin` when
# torch is installed (it also reads pre-1.6 files); without it the restricted reader runs.
# `return_tensors="pt"` (transformers' own call argument) imports torch when a caller asks for
# PyTorch tensors, and only then.
OPTIONAL_TORCH = {"ast_jax.checkpoints.pretrained", "ast_jax.frontend.batch"}


def test_the_library_never_imports_torch_or_transformers():
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                if root == "torch" and module in OPTIONAL_TORCH:
                    assert node.col_offset > 0, "torch only inside the function that may use it"
                    continue
                assert root not in ("torch", "transformers"), (module, name)


def test_public_names_resolve():
    assert sorted(ast_jax.__all__) == sorted(ast_jax._EXPORTS)
    for name in ast_jax.__all__:
        value = getattr(ast_jax, name)
        assert getattr(value, "__name__", name) == name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        ast_jax.nothing  # noqa: B018


@pytest.mark.parametrize("old", sorted(LEGACY_MODULES))
def test_old_module_paths_still_import_with_a_warning(old):
    module = importlib.import_module(f"ast_jax.{old}")
    public = [
        name
        for target in LEGACY_MODULES[old]
        for name in getattr(importlib.import_module(target), "__all__", [])
    ]
    assert public
    for name in public:
        with pytest.warns(DeprecationWarning, match=f"ast_jax.{old}.{name} moved to"):
            value = getattr(module, name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert any(
                getattr(importlib.import_module(t), name, None) is value
                for t in LEGACY_MODULES[old]
            )


def test_old_package_names_are_exported_by_the_new_packages():
    from ast_jax.inference import AudioClassifier, default_activation, load_model
    from ast_jax.model import ASTForAudioClassification, abstract_params

    assert AudioClassifier is ast_jax.AudioClassifier
    assert ASTForAudioClassification is ast_jax.ASTForAudioClassification
    assert default_activation is ast_jax.default_activation
    assert callable(load_model) and callable(abstract_params)


def test_attention_registry_covers_every_kernel_choice():
    assert set(ATTENTION_KERNELS) == set(ATTENTIONS) - {"auto"}
