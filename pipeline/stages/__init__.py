"""The stages of a run, in order: `annotate` (one Ray task per input: read, extract, compute
signals, decide), `decide` (thresholds -> kept/removed, also used to re-decide), `dedup` (the
corpus-wide exact and near-duplicate shuffle), `encode` (tokenizer training + token shards), and
`fingerprint` (what identifies each stage's outputs, so a rerun reuses or redoes them)."""
