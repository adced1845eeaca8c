"""Inputs: where documents come from. `warc` streams WARC/ARC/WET files (local, https, s3, CC
path listings), `salvage` recovers records from damaged gzip members, `readers` turns any input
format (WARC, WET, JSONL, Parquet) into documents with provenance."""
