"""OUT/report.html: one self-contained page (no external scripts, fonts or styles) about a run.

The funnel from WARC records to tokens, removals per filter with example documents, errors with
their file and offset, languages, score histograms (kept vs removed), dedup cluster sizes, per-file
accounting, and time per stage. Charts are matplotlib PNGs embedded as data URIs. Parquet is read
column by column and sampled, so the report stays cheap on large runs.
"""
from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from typing import Any

from pipeline import storage
from pipeline.config import SieveConfig

EXAMPLES_PER_REASON = 3
SCORE_ROWS_PER_FILE = 20_000
SCORES = (("quality_score", "quality P(high)"), ("nsfw_score", "NSFW P(nsfw)"), ("hate_score", "hate P(toxic)"),
          ("language_score", "language probability"))

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde2ea;padding-bottom:.3rem}
.meta{color:#5a6475;font-size:.9rem}table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
td,th{border:1px solid #dde2ea;padding:.3rem .6rem;text-align:left;vertical-align:top}th{background:#f3f5f9}
td.n{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}
.ex{font-size:.82rem;color:#39424e;max-width:700px}.grid{display:flex;flex-wrap:wrap;gap:1rem}img{max-width:100%}
code{background:#f3f5f9;padding:0 .25rem;border-radius:3px}
"""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{v:,}</td>' if isinstance(v, int) else
        f'<td class="n">{v:.3f}</td>' if isinstance(v, float) else f"<td>{v}</td>" for v in row) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _bar(labels: list[str], values: list[float], title: str, color: str = "#3b6fd4") -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, max(1.8, 0.32 * len(labels) + 0.8)))
    ax.barh(labels[::-1], values[::-1], color=color)
    ax.set_title(title, fontsize=11)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    for i, v in enumerate(values[::-1]):
        ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
    return _png(fig)


def _read_columns(out: str, sub: str, columns: list[str], opts: dict[str, Any]) -> dict[str, list[Any]]:
    """Up to SCORE_ROWS_PER_FILE rows per file of the columns that exist."""
    import pyarrow.parquet as pq

    data: dict[str, list[Any]] = defaultdict(list)
    for path in storage.listdir(storage.join(out, sub), ".parquet", opts):
        fs, p = storage.fs_and_path(path, opts)
        with fs.open(p, "rb") as fh:
            pf = pq.ParquetFile(fh)
            present = [c for c in columns if c in pf.schema_arrow.names]
            if not present:
                continue
            rows = 0
            for batch in pf.iter_batches(columns=present, batch_size=4096):
                for c in present:
                    data[c].extend(batch.column(c).to_pylist())
                rows += batch.num_rows
                if rows >= SCORE_ROWS_PER_FILE:
                    break
    return data


def _examples(out: str, opts: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """A few (url, text start) per removal reason, in file order (deterministic)."""
    import pyarrow.parquet as pq

    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path in storage.listdir(storage.join(out, "rejected"), ".parquet", opts):
        fs, p = storage.fs_and_path(path, opts)
        with fs.open(p, "rb") as fh:
            for batch in pq.ParquetFile(fh).iter_batches(columns=["reason", "url", "text"], batch_size=512):
                for reason, url, text in zip(*(batch.column(i).to_pylist() for i in range(3))):
                    if len(found[reason]) < EXAMPLES_PER_REASON:
                        found[reason].append((url, (text or "")[:240]))
    return found


def _histograms(kept: dict[str, list], rejected: dict[str, list]) -> str:
    import matplotlib.pyplot as plt

    charts = []
    for column, label in SCORES:
        a = [v for v in kept.get(column, []) if v is not None]
        b = [v for v in rejected.get(column, []) if v is not None]
        if not a and not b:
            continue
        fig, ax = plt.subplots(figsize=(4.6, 2.6))
        bins = [i / 20 for i in range(21)]
        ax.hist([a, b], bins=bins, label=[f"kept ({len(a)})", f"removed ({len(b)})"], color=["#3b6fd4", "#e08a3c"],
                stacked=True)
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=7)
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
        charts.append(_png(fig))
    return '<div class="grid">' + "".join(charts) + "</div>" if charts else "<p>No scores in this run.</p>"


def render(cfg: SieveConfig, summary: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    out, opts = cfg.output.path, cfg.input.storage_options
    totals, stages = summary["totals"], summary.get("stages", {})
    dedup, tokens = stages.get("dedup", {}), stages.get("tokenize", {})
    funnel = [("WARC records", totals["records"]), ("documents extracted", totals.get("documents", 0)),
              ("kept by filters", totals.get("kept_by_filters", totals["kept"])), ("kept after dedup", totals["kept"])]
    if tokens:
        funnel.append(("tokens", tokens.get("total_tokens", 0)))
    balanced = totals["kept"] + sum(totals["removed"].values()) + sum(totals["errors"].values()) == totals["records"]
    parts = [f"<h1>Sieve run <code>{html.escape(summary['name'])}</code></h1>",
             f'<p class="meta">output {html.escape(str(out))} · config {summary["config_hash"][:12]} · '
             f'{summary["inputs"]} input files · {summary["wall_seconds"]:.1f} s wall</p>',
             "<h2>Funnel</h2>", _bar([f[0] for f in funnel[:4]], [f[1] for f in funnel[:4]], "records → documents"),
             _table(["stage", "count"], [[a, b] for a, b in funnel]),
             f'<p>Accounting: kept {totals["kept"]:,} + removed {sum(totals["removed"].values()):,} + errors '
             f'{sum(totals["errors"].values()):,} = {totals["records"]:,} records: '
             + ('<span class="ok">adds up</span>' if balanced else '<span class="bad">DOES NOT ADD UP</span>') + "</p>"]

    by_filter: dict[str, int] = defaultdict(int)
    for reason, n in totals["removed"].items():
        by_filter[reason.split(":", 1)[0] if ":" in reason else reason] += n
    examples = _examples(out, opts)
    rows = []
    for reason, n in sorted(totals["removed"].items(), key=lambda kv: -kv[1]):
        ex = "".join(f'<div class="ex"><b>{html.escape(u)}</b><br>{html.escape(t)}…</div>' for u, t in examples.get(reason, []))
        rows.append([html.escape(reason), n, ex])
    parts += ["<h2>Removals</h2>",
              _bar(list(by_filter), list(by_filter.values()), "removed, by stage or filter", "#e08a3c"),
              _table(["reason", "records", "examples (rejected/)"], rows)]

    err_rows = []
    for path in storage.listdir(storage.join(out, "stats"), ".json", opts):
        stats = storage.read_json(path, opts)
        for sample in stats.get("error_samples", [])[:5]:
            err_rows.append([html.escape(stats["input"]), html.escape(sample["reason"]), sample.get("offset") or 0,
                             html.escape(sample.get("record_id") or ""), html.escape(sample.get("message", "")[:200])])
    parts += ["<h2>Errors</h2>", _table(["reason", "records"], [[html.escape(r), n] for r, n in totals["errors"].items()])
              if totals["errors"] else "<p>No errors.</p>"]
    if err_rows:
        parts.append(_table(["file", "reason", "offset", "record", "message"], err_rows))

    languages = sorted(totals.get("languages", {}).items(), key=lambda kv: -kv[1])[:15]
    if languages:
        parts += ["<h2>Languages (documents extracted)</h2>",
                  _bar([k for k, _ in languages], [v for _, v in languages], "documents by language (lid.176)")]
    score_cols = [c for c, _ in SCORES]
    parts += ["<h2>Scores: kept vs removed</h2>",
              _histograms(_read_columns(out, "documents", score_cols, opts), _read_columns(out, "rejected", score_cols, opts))]

    if dedup:
        hist = {int(k): v for k, v in dedup.get("cluster_size_histogram", {}).items()}
        parts += ["<h2>Deduplication</h2>", _table(["measure", "value"], [
            [html.escape(k), v] for k, v in dedup.get("removed_by_reason", {}).items()] + [
            ["candidate pairs", dedup.get("candidate_pairs", 0)], ["verified edges", dedup.get("verified_edges", 0)],
            ["boilerplate lines (seen in too many docs)", dedup.get("boilerplate_lines", 0)],
            ["lines removed", dedup.get("lines_removed", 0)]])]
        if hist:
            parts.append(_bar([f"size {k}" for k in sorted(hist)], [hist[k] for k in sorted(hist)],
                              "near-duplicate clusters by size", "#6c4bd4"))
    if tokens:
        parts += ["<h2>Tokens</h2>", _table(["measure", "value"], [
            ["documents", tokens.get("total_docs", 0)], ["tokens", tokens.get("total_tokens", 0)],
            ["shards", len(tokens.get("shards", []))], ["vocab size", tokens.get("vocab_size", 0)],
            ["dtype", tokens.get("dtype", "")], ["tokenizer sha256", tokens.get("tokenizer_sha256", "")[:16]]])]

    parts += ["<h2>Files</h2>", _table(["input", "status", "records", "kept*", "removed", "errors"], [
        [html.escape(f["input"]), f["status"], f["records"], f["kept"], sum(f["removed"].values()), sum(f["errors"].values())]
        for f in summary.get("files", [])]), '<p class="meta">* kept by the filters, before dedup.</p>']
    stage_rows = [[k, v] for k, v in summary.get("stage_seconds", {}).items()]
    mb = totals.get("payload_bytes", 0) / 2**20
    task_s = totals.get("task_seconds", 0) or 0
    parts += ["<h2>Time and throughput</h2>", _table(["stage", "seconds"], stage_rows),
              f"<p>Annotate tasks: {task_s:.1f} task-seconds for {totals.get('documents', 0):,} documents "
              f"({(totals.get('documents', 0) / task_s if task_s else 0):.0f} docs/s per task) and {mb:.1f} MB of HTML.</p>"]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Sieve report</title>"
            f"<style>{_CSS}</style></head><body>" + "\n".join(parts) + "</body></html>\n")


def write_report(cfg: SieveConfig, summary: dict[str, Any]) -> str:
    """Render and write OUT/report.html atomically; returns its path."""
    path = storage.join(cfg.output.path, "report.html")
    storage.atomic_write_bytes(path, render(cfg, summary).encode("utf-8"), cfg.input.storage_options)
    return path
