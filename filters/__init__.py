"""Per-document filters: pure Python, no Ray, testable one at a time.

Every filter is a small class (see `filters.base.DocFilter`) that *annotates* a document with
signals and separately *decides* from stored signals. The pipeline builds them by name from the
config through `FILTERS`; the names below are the config keys under `filters:`.
"""
from __future__ import annotations

import importlib

from filters.base import DocFilter, Document, FilterParams

# config name -> "module:Class". Imported lazily so that `import filters` stays cheap and a
# filter's heavy dependencies load only when it is used.
FILTERS: dict[str, str] = {
    "language": "filters.language:LanguageFilter",
    "pii": "filters.pii:PIIFilter",
    "gopher": "filters.gopher:GopherFilter",
    "gopher_repetition": "filters.gopher:GopherRepetitionFilter",
    "c4": "filters.c4:C4Filter",
    "fineweb": "filters.fineweb:FineWebFilter",
    "quality": "filters.quality:QualityFilter",
    "toxicity": "filters.toxicity:ToxicityFilter",
    "minhash": "filters.dedup:MinHashFilter",
}


def filter_class(name: str) -> type[DocFilter]:
    """The filter class registered under `name` (a key of FILTERS)."""
    module_name, class_name = FILTERS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


__all__ = ["DocFilter", "Document", "FilterParams", "FILTERS", "filter_class"]
