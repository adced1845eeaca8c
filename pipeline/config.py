"""The run configuration: YAML -> typed, validated objects, refused before any work starts.

Every section is a pydantic model with `extra="forbid"`, so a misspelt key fails with its key
path and the closest valid name. `--set a.b=value` overrides are applied to the raw YAML first and
validated with it. `config_hash` identifies the whole config in logs and summaries; what each stage
reuses on a rerun is decided by the finer per-stage fingerprints of `pipeline.stages.fingerprint`.
"""
from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from filters import FilterParams, registry


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key path."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(Section):
    name: str = "sieve"
    num_cpus: int | None = Field(None, ge=1, description="CPUs for the embedded Ray (None: all)")
    max_in_flight: int | None = Field(None, ge=1, description="WARC tasks in flight (None: 2 x CPUs)")
    ray_address: str | None = Field(None, description="Join this Ray cluster (also RAY_ADDRESS)")
    task_memory_mb: int | None = Field(None, ge=64, description="Memory Ray reserves per WARC task")
    seed: int = 0
    progress: bool = True


class InputSection(Section):
    paths: list[str] = Field(default_factory=list, description="Local paths, globs, https:// or s3:// URLs")
    paths_listing: str | None = Field(None, description="A Common Crawl warc.paths(.gz) listing")
    base_url: str = "https://data.commoncrawl.org/"
    limit: int | None = Field(None, ge=1, description="Use only the first N input files")
    max_record_bytes: int = Field(50_000_000, ge=1024, description="Larger records are skipped (counted)")
    retries: int = Field(5, ge=0)
    retry_backoff_s: float = Field(1.0, ge=0)
    timeout_s: float = Field(60.0, gt=0, description="HTTP connect/read timeout per attempt (then retried)")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options (s3 endpoint, ...)")
    format: Literal["auto", "warc", "wet", "jsonl", "parquet"] = Field(
        "auto", description="How inputs are read; auto: by file name (.warc[.gz], .arc[.gz] -> warc, .wet[.gz] -> "
        "wet, .jsonl[.gz|.zst] -> jsonl, .parquet -> parquet, others warc). Text inputs (wet, jsonl, parquet) "
        "skip extraction")
    text_field: str = Field("text", min_length=1, description="JSONL/Parquet: the document text (a dotted name "
                            "reaches into nested objects)")
    id_field: str = Field("id", min_length=1, description="JSONL/Parquet: the document id (none: the row index)")
    url_field: str = Field("url", min_length=1, description="JSONL/Parquet: the document URL")
    date_field: str = Field("date", min_length=1, description="JSONL/Parquet: the document date")

    @model_validator(mode="after")
    def _some_input(self) -> "InputSection":
        if not self.paths and not self.paths_listing:
            raise ValueError("give input.paths or input.paths_listing")
        return self


class ExtractSection(Section):
    main_content: bool = True
    markdown: bool = Field(False, description="Write headings, lists, tables and code blocks as Markdown")
    min_chars: int = Field(1, ge=0, description="Documents with less extracted text are removed as empty")
    html_types: list[str] = Field(
        default_factory=lambda: ["text/html", "application/xhtml+xml"],
        description="HTTP content types treated as HTML",
    )


class AnnotateSection(Section):
    """How the filters run on each document."""

    all_signals: bool = Field(False, description="Compute every filter's signals for every document. Off: a "
                              "document removed by a filter skips the later ones (their signals are null in "
                              "rejected/), which is faster, but a refilter that loosens a threshold cannot "
                              "decide the documents that would now reach a filter they skipped")
    order: list[str] | None = Field(None, description="The filters' run order (every configured filter once; "
                                    "the first failing one names the reason). None: each filter's declared "
                                    "order, cheap ones first")


class NearDedupSection(Section):
    """MinHash LSH near-duplicate removal (signatures come from the `minhash` filter)."""

    enabled: bool = True
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity of word n-gram shingles for near-duplicates")
    num_bands: int | None = Field(None, ge=1, description="LSH bands (None: from threshold and target_recall)")
    rows_per_band: int | None = Field(None, ge=1, description="LSH rows per band (None: num_perm // num_bands)")
    target_recall: float = Field(0.99, gt=0, lt=1, description="P(candidate) for a pair exactly at the threshold, "
                                 "used to choose bands x rows when they are not given")
    partitions: int = Field(4, ge=1, description="Ray shuffle partitions (band buckets, verification, clustering)")
    bucket_hubs: int = Field(8, ge=1, description="Each LSH bucket member is paired with the bucket's first N "
                             "members: all pairs of small buckets, about N x k (not k^2) for a bucket of k")
    verify: bool = Field(True, description="Check candidate pairs before they become edges (refuses LSH chains)")
    verify_with: Literal["text", "signature"] = Field(
        "text", description="Check candidates on exact shingle Jaccard (reads their text) or on signature Jaccard")
    survivor: list[Literal["quality", "length", "doc_id"]] = Field(
        default_factory=lambda: ["quality", "length", "doc_id"],
        description="Keep one document per cluster: best by these keys in order (quality_score high, "
                    "text long, doc_id small); doc_id always breaks remaining ties",
    )
    sample_clusters: int = Field(50, ge=0, description="Clusters written to dedup/clusters.jsonl")

    @field_validator("survivor")
    @classmethod
    def _distinct_keys(cls, keys: list[str]) -> list[str]:
        if len(set(keys)) != len(keys):
            raise ValueError(f"survivor keys must be distinct, got {keys}")
        return keys


class LineDedupSection(Section):
    """Corpus-scale boilerplate lines: removed from every surviving document that has them."""

    enabled: bool = True
    max_repeats: int = Field(10, ge=1, description="Lines found in more surviving documents than this are removed")
    min_line_chars: int = Field(10, ge=0, description="Lines shorter than this (stripped) are never counted or removed")


class DedupSection(Section):
    """The global dedup stage: exact (normalized text hash, optionally URL), near (MinHash LSH),
    then boilerplate lines; writes curated/ and dedup/."""

    enabled: bool = True
    exact: bool = Field(True, description="Remove documents whose normalized text is identical")
    by_url: bool = Field(False, description="Remove documents whose URL was already seen (empty URLs never match)")
    line: LineDedupSection = Field(default_factory=LineDedupSection)
    near: NearDedupSection = Field(default_factory=NearDedupSection)
    against: list[str] = Field(default_factory=list, description="Output paths of earlier runs: this run's "
                               "documents are deduplicated against their curated documents (signatures and "
                               "hashes only, never their text), which always survive")

    @model_validator(mode="after")
    def _against_needs_signatures(self) -> "DedupSection":
        if self.against and self.near.enabled and self.near.verify and self.near.verify_with == "text":
            raise ValueError("dedup.against compares with earlier runs by signature only (their text is never "
                             "read): set dedup.near.verify_with: signature")
        return self


class TokenizerSection(Section):
    enabled: bool = True
    path: str | None = Field(None, description="Load vocab.json + merges.txt from this directory instead of training")
    vocab_size: int = Field(8192, ge=257, description="Tokens after training: 256 bytes + special tokens + merges")
    special_tokens: list[str] = Field(default_factory=lambda: ["<|endoftext|>"],
                                      description="Never split and never merged across")
    end_of_text: str = Field("<|endoftext|>", description="Special token appended to every document in the shards")
    train_sample_bytes: int = Field(50_000_000, ge=1, description="Train on at most this much kept text "
                                    "(the same fraction of every curated file)")

    @field_validator("special_tokens")
    @classmethod
    def _distinct_non_empty(cls, tokens: list[str]) -> list[str]:
        if any(not t for t in tokens) or len(set(tokens)) != len(tokens):
            raise ValueError(f"special tokens must be distinct non-empty strings, got {tokens}")
        return tokens

    @model_validator(mode="after")
    def _consistent(self) -> "TokenizerSection":
        if self.end_of_text not in self.special_tokens:
            raise ValueError(f"end_of_text {self.end_of_text!r} must be one of special_tokens {self.special_tokens}")
        if self.vocab_size < 256 + len(self.special_tokens):
            raise ValueError(f"vocab_size {self.vocab_size} is below 256 bytes + {len(self.special_tokens)} special tokens")
        return self


class ShardsSection(Section):
    target_tokens: int = Field(50_000_000, ge=1, description="Tokens per shard (approx.: the shard count is "
                               "set from the text size before encoding)")
    seed: int = Field(0, description="Shuffles documents across and inside shards")
    formats: list[Literal["parquet", "bin", "megatron"]] = Field(
        default_factory=lambda: ["parquet"],
        description="Token outputs: parquet (shards + manifest, always written), bin (tokens/train.bin and "
                    "val.bin: flat arrays of the manifest's dtype for np.memmap), megatron (the bin files plus "
                    "Megatron-LM .idx indexes: data prefixes tokens/train and tokens/val)")
    val_fraction: float = Field(0.0005, ge=0, lt=1, description="bin/megatron: share of the documents (the last "
                                "in shard order) in val.bin; at least one when there are two or more documents "
                                "and the fraction is above 0")

    @field_validator("formats")
    @classmethod
    def _parquet_and_distinct(cls, formats: list[str]) -> list[str]:
        if "parquet" not in formats:
            raise ValueError(f"formats must include parquet (the shards and manifest every format is made "
                             f"from), got {formats}")
        if len(set(formats)) != len(formats):
            raise ValueError(f"formats must be distinct, got {formats}")
        return formats


class OutputSection(Section):
    path: str = "out/run"
    keep_rejected: bool = Field(True, description="Write removed documents to rejected/ (refilter can loosen)")
    overwrite: bool = Field(False, description="Delete the directory's earlier outputs and start fresh")
    shared_filesystem: bool = Field(False, description="A local path that every node of the Ray cluster "
                                    "mounts (NFS, Lustre): allows a local output.path on a multi-node cluster")


class SieveConfig(Section):
    run: RunSection = Field(default_factory=RunSection)
    input: InputSection
    extract: ExtractSection = Field(default_factory=ExtractSection)
    annotate: AnnotateSection = Field(default_factory=AnnotateSection)
    # Validated by each registered filter class's Params; in run order (see `_run_order`).
    # SerializeAsAny: dump each filter's own parameters, not just the base class's `enabled`.
    filters: dict[str, SerializeAsAny[FilterParams]] = Field(default_factory=dict)
    dedup: DedupSection = Field(default_factory=DedupSection)
    tokenizer: TokenizerSection = Field(default_factory=TokenizerSection)
    shards: ShardsSection = Field(default_factory=ShardsSection)
    output: OutputSection = Field(default_factory=OutputSection)

    @field_validator("filters", mode="before")
    @classmethod
    def _build_filter_params(cls, raw: Any) -> dict[str, FilterParams]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ValueError("filters must be a mapping of filter name -> parameters")
        classes = registry()
        out: dict[str, FilterParams] = {}
        for name, params in raw.items():
            if name not in classes:
                raise ValueError(f"unknown filter {name!r}{_suggest(name, classes)}")
            if isinstance(params, FilterParams):
                out[name] = params
                continue
            if params is not None and not isinstance(params, dict):
                raise ValueError(f"filters.{name}: expected a mapping of parameters, got {params!r}")
            try:
                out[name] = classes[name].Params(**(params or {}))
            except ValidationError as exc:
                raise ValueError(f"filters.{name}: " + _format_errors(exc, classes[name].Params)) from None
        return out

    @model_validator(mode="after")
    def _run_order(self) -> "SieveConfig":
        """Put `filters` in run order: `annotate.order` when given, else each class's `order`."""
        order = self.annotate.order
        if order is None:
            ranks = {name: i for i, name in enumerate(registry())}
            order = sorted(self.filters, key=ranks.__getitem__)
        else:
            unknown = [n for n in order if n not in self.filters]
            missing = [n for n in self.filters if n not in order]
            if unknown or missing or len(set(order)) != len(order):
                raise ValueError(f"annotate.order must name every configured filter once: {order} "
                                 f"(configured: {list(self.filters)})")
        if list(self.filters) != order:
            # object.__setattr__: validate_assignment would rerun this validator.
            object.__setattr__(self, "filters", {name: self.filters[name] for name in order})
        return self

    def hash(self) -> str:
        """sha256 of what the outputs depend on (not CPU counts, addresses or progress bars)."""
        data = self.model_dump(mode="json")
        for key in ("num_cpus", "max_in_flight", "ray_address", "progress", "task_memory_mb"):
            data["run"].pop(key, None)
        for key in ("overwrite", "path", "shared_filesystem"):
            data["output"].pop(key, None)
        for key in ("retries", "retry_backoff_s", "timeout_s", "storage_options"):
            data["input"].pop(key, None)
        data["filter_order"] = list(self.filters)  # the first failing filter names the reason
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid: {', '.join(sorted(choices))})"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The valid field names of the model found at `loc` (for suggestions)."""
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            break
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            current = ann
        else:
            break
    return list(getattr(current, "model_fields", {}))


def _format_errors(exc: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key {path!r}{_suggest(loc[-1], _fields_at(model, loc[:-1]))}")
        else:
            got = err.get("input")
            got_s = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"{path}: {err['msg']}{got_s}")
    return "; ".join(lines)


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` override (value parsed as YAML) to the raw config dict."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key.path=value")
    key, value = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {assignment!r}: empty key")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(value) if value.strip() else None


def parse_config(raw: dict[str, Any], source: str = "<config>") -> SieveConfig:
    try:
        return SieveConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_format_errors(exc, SieveConfig)}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> SieveConfig:
    """Read a YAML config, apply `--set` overrides, validate. Raises ConfigError."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    for assignment in overrides or []:
        apply_override(raw, assignment)
    return parse_config(raw, str(path))
