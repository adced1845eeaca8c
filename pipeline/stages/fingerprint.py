"""Per-stage fingerprints: exactly what shaped each stage's outputs.

A rerun into the same output directory compares each stage's stored fingerprint with the one the
current config gives, reuses the stages that match and redoes the rest (and, through the chain
below, everything downstream of them):

    signals   input file (name, size, etag/mtime) + its reader (format, fields) + extraction
              + each filter's provenance
              (name, version, signal parameters, model sha256s), in filter order
              + annotate.all_signals (off: removed documents lack the later filters' signals)
    decide    signals + each filter's thresholds (in order: the first failing one names the reason)
    dedup     its parameters + run.seed + every input's decide fingerprint (the decided documents)
    tokenizer its parameters + the curated documents (or the loaded files' sha256)
    shards    their parameters + the tokenizer + the curated documents

A threshold change therefore re-decides the stored signals and redoes dedup and tokens; a new
model recomputes the signals; a new vocab size retrains the tokenizer and re-encodes, nothing more.
"""
from __future__ import annotations

import hashlib
import json
import urllib.request
from typing import Any

from filters import DocFilter
from filters.extract import VERSION as EXTRACTOR_VERSION
from pipeline import storage
from pipeline.config import SieveConfig
from pipeline.inputs.readers import reader_for


def digest(obj: Any) -> str:
    """sha256 of an object's canonical JSON."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def input_identity(path: str, storage_options: dict[str, Any] | None = None, timeout_s: float = 60.0) -> dict[str, Any]:
    """What identifies the current content of an input: name, size and etag (or mtime).

    An input whose metadata cannot be read right now gets `unverified` instead: its fingerprint
    then matches no stored one that was verified, so the input is read again (not reused blind).
    """
    identity: dict[str, Any] = {"name": path}
    try:
        if path.startswith(("http://", "https://")):
            request = urllib.request.Request(path, method="HEAD", headers={"User-Agent": "sieve/0.1"})
            with urllib.request.urlopen(request, timeout=timeout_s) as resp:
                info = {"size": resp.headers.get("Content-Length"), "etag": resp.headers.get("ETag"),
                        "mtime": resp.headers.get("Last-Modified")}
        else:
            fs, p = storage.fs_and_path(path, storage_options)
            raw = fs.info(p)
            info = {"size": raw.get("size"), "etag": raw.get("ETag") or raw.get("etag"),
                    "mtime": raw.get("mtime") or raw.get("LastModified") or raw.get("last_modified")}
    except Exception as exc:  # noqa: BLE001 - a missing or unreachable input is the task's error to report
        identity["unverified"] = f"{type(exc).__name__}: {exc}"[:200]
        return identity
    identity["size"] = int(info["size"]) if info["size"] is not None else None
    if info["etag"]:
        identity["etag"] = str(info["etag"]).strip('"')
    elif info["mtime"] is not None:
        identity["mtime"] = str(info["mtime"])
    return identity


def files_fingerprint(paths: list[str], storage_options: dict[str, Any] | None = None) -> str:
    """Files identified by name, size and etag/mtime: the documents fingerprint for a caller of a
    global stage that has no run's fingerprint (tests, benches)."""
    return digest([input_identity(path, storage_options) for path in paths])


def matching_marker(path: str, fingerprint: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A stage's final marker (a JSON file written last) when it carries `fingerprint`, else None."""
    if not storage.exists(path, storage_options):
        return None
    stored = storage.read_json(path, storage_options)
    return stored if stored.get("fingerprint") == fingerprint else None


def provenance(filters: list[DocFilter]) -> list[dict[str, Any]]:
    """Each filter's provenance, in the order the filters run (a text-rewriting filter such as
    PII masking changes what the later ones see)."""
    return [f.provenance() for f in filters]


def extraction_params(cfg: SieveConfig) -> dict[str, Any]:
    """The config that decides which records become documents and what their text is."""
    return {"extract": cfg.extract.model_dump(mode="json"), "extractor_version": EXTRACTOR_VERSION,
            "max_record_bytes": cfg.input.max_record_bytes}


def signals_fingerprint(cfg: SieveConfig, filter_provenance: list[dict[str, Any]], identity: dict[str, Any]) -> str:
    fingerprint = {"input": identity, **extraction_params(cfg), "filters": filter_provenance,
                   "all_signals": cfg.annotate.all_signals}
    reader = reader_for(identity["name"], cfg.input, cfg.extract).params()
    if reader["format"] != "warc":
        fingerprint["reader"] = reader  # WARC inputs keep the fingerprints they had before readers existed
    return digest(fingerprint)


def decide_fingerprint(cfg: SieveConfig, filters: list[DocFilter], signals: str) -> str:
    return digest({"signals": signals, "keep_rejected": cfg.output.keep_rejected,
                   "thresholds": [[f.name, f.params.decision_params()] for f in filters]})


def decided_fingerprint(file_stats: list[dict[str, Any]]) -> str:
    """The decided documents of the run: every input's stem, status and decide fingerprint."""
    return digest(sorted((s["stem"], s.get("status"), s.get("fingerprints", {}).get("decide")) for s in file_stats))


def dedup_fingerprint(cfg: SieveConfig, decided: str) -> str:
    """Also the identity of every `dedup.against` run (its dedup stage's fingerprint), so a rerun
    notices when an earlier run was redone."""
    opts = cfg.input.storage_options
    against = []
    for run in cfg.dedup.against:
        marker = storage.join(run, "dedup", "stats.json")
        against.append(storage.read_json(marker, opts).get("fingerprint") if storage.exists(marker, opts) else None)
    return digest({"dedup": cfg.dedup.model_dump(mode="json"), "seed": cfg.run.seed, "documents": decided,
                   **({"against": against} if against else {})})


def tokenizer_fingerprint(cfg: SieveConfig, curated: str, loaded_sha256: str | None) -> str:
    """A loaded tokenizer depends on its files only; a trained one on its settings and the text."""
    t = cfg.tokenizer
    if t.path:
        return digest({"loaded": loaded_sha256, "special_tokens": t.special_tokens})
    return digest({"vocab_size": t.vocab_size, "special_tokens": t.special_tokens,
                   "train_sample_bytes": t.train_sample_bytes, "curated": curated})


def shards_fingerprint(cfg: SieveConfig, tokenizer: str, curated: str) -> str:
    return digest({"shards": cfg.shards.model_dump(mode="json"), "end_of_text": cfg.tokenizer.end_of_text,
                   "tokenizer": tokenizer, "curated": curated})
