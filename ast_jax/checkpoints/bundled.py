"""Models that ship inside the package, usable offline.

``kws12``: a small AST (hidden 192, 4 layers, 1.25 M params) trained from scratch by
``scripts/train_kws.py`` on speech synthesised by four engines (espeak-ng, flite, festival,
Pico): the twelve Speech Commands V2-12 classes (yes, no, up, down, left, right, on, off, stop,
go, ``_silence_``, ``_unknown_``) in 1-s clips at 16 kHz. ``ast_jax/models/kws12/MODEL_CARD.md`` has
the data, recipe, accuracy per engine and with a whole engine left out, and the command that
reproduces it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["BUNDLED_MODELS", "DEFAULT_BUNDLED_MODEL", "bundled_model_path"]

BUNDLED_MODELS = ("kws12",)
DEFAULT_BUNDLED_MODEL = "kws12"


def bundled_model_path(name: str = DEFAULT_BUNDLED_MODEL) -> Path:
    """The checkpoint directory of a bundled model, for `ast_jax.load_pretrained` and
    ``ast-jax classify``.

    Raises:
      ValueError: ``name`` is not one of `BUNDLED_MODELS`.
      FileNotFoundError: the package was installed without its model files.
    """
    if name not in BUNDLED_MODELS:
        raise ValueError(f"unknown bundled model {name!r}; expected one of {BUNDLED_MODELS}")
    path = Path(str(resources.files("ast_jax").joinpath("models", name)))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"bundled model {name!r} is missing from the installation ({path})")
    return path
