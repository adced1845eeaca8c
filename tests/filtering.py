"""One filter on one document, as the pipeline runs it: annotate, then decide."""
from __future__ import annotations

from filters import DocFilter, Document


def verdict(doc_filter: DocFilter, doc: Document) -> tuple[bool, str | None]:
    """`(keep, reason)` of `doc_filter` on `doc`; a reason must be one the class declares."""
    doc_filter.annotate(doc)
    reason = doc_filter.decide(doc.signals)
    if reason is not None:
        name, rule = reason.split(":", 1)
        assert name == doc_filter.name and rule in doc_filter.reasons, f"{reason} not declared by {doc_filter.name}"
    return reason is None, reason
