"""Sieve's orchestration: WARC IO, the Ray stages, tokenizer, token shards, stats and report.

Only this package knows about Ray; the per-document logic lives in `filters/`.
"""
