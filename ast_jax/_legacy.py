"""The module paths of ast-jax 0.1 (one flat package), kept working for existing user code.

``from ast_jax.features import FeatureExtractor`` and the like still work: each old module is a
light alias registered in `sys.modules` when ``ast_jax`` is imported. Nothing is imported until a
name is read from it; then the name is looked up in the modules that now hold it, with a
`DeprecationWarning` naming the new place. (``ast_jax.model`` and ``ast_jax.inference`` are
packages now; they export their old names themselves.)
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from typing import Any

__all__ = ["LEGACY_MODULES", "install_legacy_modules"]

# Old module -> the modules that now hold its public names, searched in order.
LEGACY_MODULES: dict[str, tuple[str, ...]] = {
    "audio": ("ast_jax.frontend.audio",),
    "features": ("ast_jax.frontend.kaldi", "ast_jax.frontend.extractor"),
    "jax_features": ("ast_jax.frontend.jax_fbank", "ast_jax.model.waveforms"),
    "windows": ("ast_jax.frontend.windows",),
    "layers": ("ast_jax.model.layers", "ast_jax.model.attention"),
    "positions": ("ast_jax.model.positions",),
    "explain": ("ast_jax.model.attention_maps",),
    "bundled": ("ast_jax.checkpoints.bundled",),
    "convert": ("ast_jax.checkpoints.keymaps",),
    "torch_pickle": ("ast_jax.checkpoints.torch_pickle",),
    "checkpoint": (
        "ast_jax.checkpoints.pretrained",
        "ast_jax.checkpoints.original",
        "ast_jax.checkpoints.sources",
    ),
    "sharding": ("ast_jax.runtime.sharding",),
    "augment": ("ast_jax.training.augment",),
    "metrics": ("ast_jax.training.metrics",),
    "history": ("ast_jax.training.history",),
    "data": ("ast_jax.training.datasets", "ast_jax.training.features", "ast_jax.training.loader"),
    "train_state": ("ast_jax.training.state",),
    "train": (
        "ast_jax.training.config",
        "ast_jax.training.optimizer",
        "ast_jax.training.step",
        "ast_jax.training.loop",
        "ast_jax.model.params",
    ),
    "finetune": ("ast_jax.training.finetune", "ast_jax.model.params"),
}


class _LegacyModule(types.ModuleType):
    """An old module path whose names are looked up in their new modules on first use."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"Moved: see {', '.join(targets)}.")
        self._targets = targets

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attribute):
                warnings.warn(
                    f"{self.__name__}.{attribute} moved to {target}.{attribute}; the old path "
                    "will be removed in a future release",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(module, attribute)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attribute!r}")


def install_legacy_modules() -> None:
    """Registers every old module path in `sys.modules` (idempotent)."""
    for old, targets in LEGACY_MODULES.items():
        sys.modules.setdefault(f"ast_jax.{old}", _LegacyModule(f"ast_jax.{old}", targets))
