"""Per-document filters: pure Python, no Ray, testable one at a time.

Every filter is a small class (see `filters.base.DocFilter`) that *annotates* a document with
signals and separately *decides* from stored signals. Defining the class registers it under its
`name`, the config key under `filters:`; `registry()` finds every filter of this package by
importing its modules (on first use, so that `import filters` stays cheap; heavy models load
only in `annotate`).
"""
from __future__ import annotations

import functools
import importlib
import pkgutil

from filters.base import Chart, DocFilter, Document, FilterParams, registered


@functools.lru_cache(maxsize=1)
def _import_filter_modules() -> None:
    """Import every module of this package once (defining a filter class registers it)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def registry() -> dict[str, type[DocFilter]]:
    """Every filter class, by config name, in default run order (`DocFilter.order`, then name)."""
    _import_filter_modules()
    return dict(sorted(registered().items(), key=lambda item: (item[1].order, item[0])))


def filter_class(name: str) -> type[DocFilter]:
    """The filter class registered under `name` (KeyError naming the valid names otherwise)."""
    classes = registry()
    if name not in classes:
        raise KeyError(f"unknown filter {name!r} (valid: {', '.join(classes)})")
    return classes[name]


__all__ = ["Chart", "DocFilter", "Document", "FilterParams", "filter_class", "registry"]
