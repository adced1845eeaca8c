"""Tokens: the byte-level BPE `tokenizer` (training and encoding side by side), the Parquet token
`shards` with `TokenShards` for trainers, and the token `writers` (Parquet, flat .bin, Megatron)."""
