"""Decide from signals: the configured filters' thresholds, first failing rule wins.

Shared by the annotate task (deciding right after computing) and `pipeline.refilter`
(re-deciding stored signals with new thresholds, without running any model).
"""
from __future__ import annotations

from typing import Any, Mapping

from filters import DocFilter, filter_class
from pipeline.config import SieveConfig


def build_filters(cfg: SieveConfig) -> list[DocFilter]:
    """The enabled filters, in config order (models load lazily, so this is cheap)."""
    return [filter_class(name)(params) for name, params in cfg.filters.items() if params.enabled]


def decide(filters: list[DocFilter], signals: Mapping[str, Any]) -> str | None:
    """None to keep the document, else the first failing filter's reason."""
    for doc_filter in filters:
        reason = doc_filter.decide(signals)
        if reason is not None:
            return reason
    return None
