"""Lazy re-exports: a package names its public API without importing the modules behind it.

A package's ``__init__`` maps each public name to the module that defines it and installs
`lazy_getattr` as its module-level ``__getattr__`` (PEP 562): the defining module is imported the
first time the name is read, so importing the package itself stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` on first use.

    Raises (from the returned function):
      AttributeError: a name that is not in ``exports``.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
