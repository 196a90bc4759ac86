"""JAX's persistent compilation cache: a program compiled once on a machine is loaded, not
compiled again, by later processes (the command line's start-up is then mostly imports).

The cache lives in the user's cache directory (``$XDG_CACHE_HOME/ast-jax/jax``, by default
``~/.cache/ast-jax/jax``). ``AST_JAX_COMPILATION_CACHE`` names another directory, or turns the
cache off with ``0``; a cache directory configured for JAX itself (``JAX_COMPILATION_CACHE_DIR``)
is left as it is.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["CACHE_VARIABLE", "default_cache_dir", "enable_compilation_cache"]

CACHE_VARIABLE = "AST_JAX_COMPILATION_CACHE"
_OFF = frozenset({"0", "off", "false", "no"})
# JAX's own settings (read from the environment when jax is imported, or set in its config).
_JAX_SETTINGS = {
    "jax_compilation_cache_dir": None,  # the directory, filled in below
    # Cache every program: the default (1 s) skips the small ones a short run is made of.
    "jax_persistent_cache_min_compile_time_secs": 0.0,
}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ast-jax/jax``, or ``~/.cache/ast-jax/jax``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "ast-jax" / "jax"


def enable_compilation_cache(directory: str | os.PathLike[str] | None = None) -> Path | None:
    """Turns on JAX's persistent compilation cache, unless ``AST_JAX_COMPILATION_CACHE=0``.

    Cheap before ``import jax`` (it sets JAX's environment variables); after it, it updates
    ``jax.config``.

    Args:
      directory: where compiled programs go; None: ``AST_JAX_COMPILATION_CACHE`` if it names a
        directory, else a directory already configured for JAX, else `default_cache_dir`.

    Returns:
      The cache directory, or None when the cache is turned off.
    """
    setting = os.environ.get(CACHE_VARIABLE, "")
    if setting.lower() in _OFF:
        return None
    configured = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    path = Path(directory or setting or configured or default_cache_dir()).expanduser()
    settings = {**_JAX_SETTINGS, "jax_compilation_cache_dir": str(path)}
    if "jax" in sys.modules:
        import jax

        for name, value in settings.items():
            jax.config.update(name, value)
    else:
        for name, value in settings.items():
            os.environ.setdefault(name.upper(), str(value))
    return path
