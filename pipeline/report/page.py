"""OUT/report.html: one self-contained page about a run, readable offline in any browser.

Sections: key numbers, the funnel (input records, i.e. WARC records or text rows -> documents ->
kept by filters -> deduplicated -> tokens), removals per reason with example documents, errors with their file and byte offset,
languages, score histograms (kept vs removed), deduplication (cluster sizes, largest clusters),
tokens, per-file accounting, and time and throughput per stage.

Counts come from the run summary (run.json), so the page and the JSON always agree. Examples and
score distributions are samples of the Parquet outputs: only the needed columns are read, at most
`SCORE_ROWS_PER_FILE` rows of at most `MAX_SAMPLED_FILES` files, and example texts only for the
rows chosen; the choice is seeded (`run.seed`), so a rerun draws the same page. Paths go through
`pipeline.storage`, so s3:// outputs work. Charts are matplotlib SVGs inlined as data URIs; every
string that comes from the data is HTML-escaped.
"""
from __future__ import annotations

import base64
import heapq
import html
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from filters import filter_class
from pipeline import storage
from pipeline.config import SieveConfig

EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 200
SCORE_ROWS_PER_FILE = 5_000
MAX_SAMPLED_FILES = 256
MAX_FILE_ROWS = 100
MAX_ERROR_FILES = 50
ERROR_SAMPLES_PER_FILE = 3
MAX_LANGUAGES = 15
LARGEST_CLUSTERS = 5
MAX_CLUSTER_LINES = 10_000

BLUE, ORANGE, PURPLE, GREEN, GREY = "#3b6fd4", "#e0803c", "#7a55d6", "#2f9e6e", "#8b95a5"


@dataclass(frozen=True)
class ScoreChart:
    """One filter class's `Chart` with the configured threshold and the full removal reason."""

    column: str
    title: str
    threshold: Any
    reason: str


def score_charts(cfg: SieveConfig) -> list[ScoreChart]:
    """The histograms the configured filters declare (`DocFilter.charts`), in run order."""
    return [ScoreChart(chart.column, chart.title, getattr(params, chart.threshold), f"{name}:{chart.reason}")
            for name, params in cfg.filters.items() if params.enabled for chart in filter_class(name).charts]

_CSS = """
:root{--ink:#1d2330;--muted:#5d6778;--line:#e1e5ec;--soft:#f5f7fa;--blue:#3b6fd4}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--ink);
margin:0;background:#fff;line-height:1.45;font-size:15px}
main{max-width:1120px;margin:0 auto;padding:1.5rem 1.5rem 4rem}
header{border-bottom:1px solid var(--line);padding-bottom:.8rem}
h1{font-size:1.55rem;margin:.2rem 0}h1 code{font-size:1.3rem}
h2{font-size:1.2rem;margin:2.2rem 0 .6rem;padding-bottom:.3rem;border-bottom:2px solid var(--line)}
h3{font-size:1rem;margin:1.2rem 0 .4rem}
.meta,.note{color:var(--muted);font-size:.86rem}
nav{margin:.7rem 0 0;font-size:.86rem}nav a{color:var(--blue);text-decoration:none;margin-right:1rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:.7rem;margin:1.2rem 0}
.card{background:var(--soft);border:1px solid var(--line);border-radius:8px;padding:.6rem .8rem}
.card b{display:block;font-size:1.35rem;font-variant-numeric:tabular-nums}
.card span{color:var(--muted);font-size:.8rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.86rem}
th,td{border-bottom:1px solid var(--line);padding:.32rem .7rem;text-align:left;vertical-align:top;
overflow-wrap:break-word}
td.p{overflow-wrap:anywhere;min-width:12rem}
th{background:var(--soft);font-weight:600;border-top:1px solid var(--line)}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:hover td{background:#fafbfd}
.wide{width:100%}
.ex{font-size:.8rem;color:#3c4452;margin:.15rem 0 .45rem;max-width:680px;overflow-wrap:anywhere}
.ex .u{color:var(--blue);font-weight:600}
.ok{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:1rem 1.5rem;align-items:flex-start}
img.chart{max-width:100%;height:auto}
.two{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
code{background:var(--soft);padding:0 .3rem;border-radius:4px;font-size:.92em}
details{margin:.6rem 0}summary{cursor:pointer;color:var(--muted);font-size:.88rem}
"""

SECTIONS = (("funnel", "Funnel"), ("removals", "Removals"), ("errors", "Errors"), ("languages", "Languages"),
            ("scores", "Scores"), ("dedup", "Deduplication"), ("tokens", "Tokens"), ("files", "Files"),
            ("time", "Time and throughput"))


# ----------------------------------------------------------------------------- formatting

def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _esc("" if value is None else value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return _esc(value)


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def _table(table_id: str, headers: list[str], rows: Iterable[list[Any]], *, numeric: Iterable[int] = (),
           raw: Iterable[int] = (), long: Iterable[int] = (), css: str = "") -> str:
    """An HTML table; columns in `numeric` are right-aligned numbers, columns in `raw` are
    already-escaped HTML, columns in `long` (paths, messages) may wrap anywhere; every other cell
    is escaped here."""
    numeric, raw, long = set(numeric), set(raw), set(long)
    head = "".join(f'<th class="n">{_esc(h)}</th>' if i in numeric else f"<th>{_esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            if i in numeric:
                cells.append(f'<td class="n">{_num(value)}</td>')
            else:
                cls = ' class="p"' if i in long else ""
                cells.append(f"<td{cls}>{value if i in raw else _esc(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = f' class="{css}"' if css else ""
    return f'<table id="{table_id}"{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _snippet(text: str | None) -> str:
    """The first EXAMPLE_CHARS characters of a document on one line."""
    flat = " ".join((text or "")[: EXAMPLE_CHARS * 4].split())
    return flat[:EXAMPLE_CHARS] + ("…" if len(flat) > EXAMPLE_CHARS or len(text or "") > EXAMPLE_CHARS * 4 else "")


# ----------------------------------------------------------------------------- charts

class Charts:
    """Matplotlib figures (no pyplot state) rendered to SVG data URIs."""

    RC = {"font.family": "sans-serif", "font.size": 9, "axes.titlesize": 10, "axes.titleweight": "bold",
          "axes.spines.top": False, "axes.spines.right": False, "axes.edgecolor": "#9aa3b2",
          "xtick.color": "#4a5363", "ytick.color": "#4a5363", "svg.fonttype": "none", "svg.hashsalt": "sieve"}

    def __init__(self) -> None:
        import matplotlib

        self.matplotlib = matplotlib

    def _figure(self, width: float, height: float) -> tuple[Any, Any]:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width, height))
        return fig, fig.add_subplot()

    def _img(self, fig: Any, alt: str) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
        data = base64.b64encode(buf.getvalue()).decode()
        return f'<img class="chart" alt="{_esc(alt)}" src="data:image/svg+xml;base64,{data}">'

    def bars(self, labels: list[str], values: list[float], title: str, *, color: str = BLUE,
             notes: list[str] | None = None, width: float = 7.0) -> str:
        """Horizontal bars, first label on top, each annotated with its value (or its note)."""
        with self.matplotlib.rc_context(self.RC):
            fig, ax = self._figure(width, 0.34 * len(labels) + 0.9)
            y = np.arange(len(labels))[::-1]
            ax.barh(y, values, color=color, height=0.68)
            ax.set_yticks(y, labels)
            ax.set_title(title, loc="left")
            ax.xaxis.grid(True, color="#eceff4")
            ax.set_axisbelow(True)
            top = max(values, default=0) or 1
            ax.set_xlim(0, top * 1.18)
            for yi, v, note in zip(y, values, notes or [f"{v:,.0f}" for v in values]):
                ax.text(v + top * 0.01, yi, note, va="center", fontsize=8, color="#333b48")
            return self._img(fig, title)

    def histogram(self, kept: np.ndarray, by_rule: np.ndarray, by_other: np.ndarray, title: str, rule: str,
                  threshold: float | None) -> str:
        """Stacked 20-bin histogram on [0, 1]: kept, removed by this score's rule, removed by another
        rule; with the threshold."""
        with self.matplotlib.rc_context(self.RC):
            fig, ax = self._figure(4.6, 2.3)
            bins = np.linspace(0, 1, 21)
            ax.hist([kept, by_rule, by_other], bins=bins, stacked=True, color=[BLUE, ORANGE, "#c9ced8"],
                    label=[f"kept ({len(kept):,})", f"removed as {rule} ({len(by_rule):,})",
                           f"removed by other rules ({len(by_other):,})"])
            if threshold is not None:
                ax.axvline(threshold, color="#b42318", linestyle="--", linewidth=1.2, label=f"threshold {threshold:g}")
            ax.set_title(title, loc="left")
            ax.set_xlim(0, 1)
            ax.set_ylabel("documents")
            ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
            return self._img(fig, title)

    def columns(self, labels: list[str], values: list[int], title: str, xlabel: str, color: str = PURPLE) -> str:
        from matplotlib.ticker import MaxNLocator

        with self.matplotlib.rc_context(self.RC):
            fig, ax = self._figure(max(3.5, 0.45 * len(labels) + 1.5), 2.7)
            ax.bar(labels, values, color=color, width=0.6)
            ax.set_xlim(-0.5 - 2 / (len(labels) + 1), len(labels) - 0.5 + 2 / (len(labels) + 1))
            ax.set_title(title, loc="left")
            ax.set_xlabel(xlabel)
            ax.yaxis.grid(True, color="#eceff4")
            ax.set_axisbelow(True)
            if max(values, default=0) > 50 * max(min(values, default=1), 1):
                ax.set_yscale("log")
            else:
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            return self._img(fig, title)


# ----------------------------------------------------------------------------- sampling

class OutputSample:
    """Bounded, seeded samples of a run's Parquet outputs (kept, rejected, dedup removals)."""

    def __init__(self, out: str, storage_options: dict[str, Any], seed: int) -> None:
        self.out, self.opts, self.seed = out, storage_options, seed

    def files(self, sub: str) -> tuple[list[str], int]:
        """Up to MAX_SAMPLED_FILES Parquet files of OUT/sub, evenly spread; and how many there are."""
        paths = storage.listdir(storage.join(self.out, sub), ".parquet", self.opts)
        if len(paths) <= MAX_SAMPLED_FILES:
            return paths, len(paths)
        picks = np.linspace(0, len(paths) - 1, MAX_SAMPLED_FILES).round().astype(int)
        return [paths[i] for i in sorted(set(picks.tolist()))], len(paths)

    def _open(self, path: str) -> tuple[Any, pq.ParquetFile]:
        fs, p = storage.fs_and_path(path, self.opts)
        fh = fs.open(p, "rb")
        return fh, pq.ParquetFile(fh)

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    @staticmethod
    def take_rows(pf: pq.ParquetFile, rows: np.ndarray, columns: list[str]) -> pa.Table:
        """Rows (sorted indices) of `columns`, reading only the row groups that hold them, batch by batch."""
        sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
        starts = np.concatenate(([0], np.cumsum(sizes)))
        pieces = []
        for group in np.unique(np.searchsorted(starts, rows, side="right") - 1):
            position = int(starts[group])
            for batch in pf.iter_batches(batch_size=1024, row_groups=[int(group)], columns=columns):
                local = rows[(rows >= position) & (rows < position + batch.num_rows)] - position
                if len(local):
                    pieces.append(batch.take(pa.array(local)))
                position += batch.num_rows
        schema = pa.schema([pf.schema_arrow.field(c) for c in columns])
        return pa.Table.from_batches(pieces, schema=schema) if pieces else schema.empty_table()

    def numbers(self, sub: str, columns: list[str]) -> dict[str, np.ndarray]:
        """Up to SCORE_ROWS_PER_FILE random rows per file: each of `columns` as floats (NaN where
        missing, so rows stay aligned) and, in rejected/, the `reason` of each row."""
        tables = []
        paths, _ = self.files(sub)
        for index, path in enumerate(paths):
            fh, pf = self._open(path)
            with fh:
                present = [c for c in [*columns, "reason"] if c in pf.schema_arrow.names]
                n = pf.metadata.num_rows
                if not set(present) & set(columns) or not n:
                    continue
                rows = np.arange(n) if n <= SCORE_ROWS_PER_FILE else np.sort(
                    self._rng(index).choice(n, SCORE_ROWS_PER_FILE, replace=False))
                table = self.take_rows(pf, rows, present)
            tables.append({c: (table.column(c).to_numpy(zero_copy_only=False) if c in present else
                               np.full(table.num_rows, None if c == "reason" else np.nan))
                           for c in [*columns, "reason"]})
        result = {c: np.concatenate([t[c] for t in tables]) if tables else np.zeros(0, dtype=object)
                  for c in [*columns, "reason"]}
        for c in columns:
            result[c] = result[c].astype(np.float64)
        return result

    def examples(self, paths: list[str], columns: list[str], k: int = EXAMPLES_PER_REASON) -> dict[str, list[dict]]:
        """Up to k rows per `reason` over `paths` (the rows with the smallest seeded random keys),
        with the wanted `columns`; only the `reason` column is read in full."""
        chosen: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
        for index, path in enumerate(paths):
            fh, pf = self._open(path)
            with fh:
                if "reason" not in pf.schema_arrow.names or not pf.metadata.num_rows:
                    continue
                reasons = pf.read(columns=["reason"]).column("reason").combine_chunks().dictionary_encode()
            codes = reasons.indices.to_numpy(zero_copy_only=False)
            keys = self._rng(10_000 + index).random(len(codes))
            for code, reason in enumerate(reasons.dictionary.to_pylist()):
                rows = np.flatnonzero(codes == code)
                best = rows[np.argsort(keys[rows], kind="stable")[:k]]
                chosen[reason] = heapq.nsmallest(k, chosen[reason] + [(keys[r], index, int(r)) for r in best])
        wanted: dict[int, list[tuple[str, int, float]]] = defaultdict(list)
        for reason, picks in chosen.items():
            for key, index, row in picks:
                wanted[index].append((reason, row, key))
        found: dict[str, list[tuple[float, dict]]] = defaultdict(list)
        for index, picks in wanted.items():
            fh, pf = self._open(paths[index])
            with fh:
                present = [c for c in columns if c in pf.schema_arrow.names]
                rows = np.array(sorted({row for _, row, _ in picks}))
                table = self.take_rows(pf, rows, present).to_pylist()
            by_row = dict(zip(rows.tolist(), table))
            for reason, row, key in picks:
                found[reason].append((key, by_row[row]))
        return {reason: [row for _, row in sorted(rows, key=lambda kr: kr[0])] for reason, rows in found.items()}


# ----------------------------------------------------------------------------- the report

EARLY_STEPS = ("WARC record type", "HTTP status", "content type / size", "extraction")


def common_dir(paths: list[str]) -> str:
    """The directory all `paths` share ('' if none), to print them shorter."""
    parts = [p.split("/")[:-1] for p in paths]
    if not parts:
        return ""
    shared = []
    for components in zip(*parts):
        if len(set(components)) != 1:
            break
        shared.append(components[0])
    return "/".join(shared) + "/" if shared else ""

def reason_group(reason: str) -> str:
    """The pipeline step a removal reason belongs to (for the per-step chart)."""
    head = reason.split(":", 1)[0]
    if head == "record":
        return "WARC record type"
    if head in ("http_status", "not_http"):
        return "HTTP status"
    if reason in ("not_html", "too_large", "empty_body"):
        return "content type / size"
    if head == "extract":
        return "extraction"
    if head == "dedup":
        return "dedup"
    return f"filter: {head}"


class Report:
    """Builds the page from the run summary, the config and bounded samples of the outputs."""

    def __init__(self, cfg: SieveConfig, summary: dict[str, Any]) -> None:
        self.cfg, self.summary = cfg, summary
        self.out, self.opts = cfg.output.path, cfg.input.storage_options
        self.totals = summary["totals"]
        self.stages = summary.get("stages") or {}
        self.dedup = self.stages.get("dedup") or {}
        self.tokens = self.stages.get("tokenize") or {}
        self.sample = OutputSample(self.out, self.opts, cfg.run.seed)
        self.charts = Charts()
        self._stats: dict[str, dict[str, Any] | None] = {}
        self._clusters: list[dict[str, Any]] | None = None
        self.input_dir = common_dir([f["input"] for f in summary.get("files", [])])

    def short(self, path: str) -> str:
        return path.removeprefix(self.input_dir) or path

    def paths_note(self) -> str:
        return f"Paths relative to <code>{_esc(self.input_dir)}</code>. " if self.input_dir else ""

    def file_stats(self, stem: str) -> dict[str, Any] | None:
        """stats/<stem>.json of one input (None when the task never finished it)."""
        if stem not in self._stats:
            path = storage.join(self.out, "stats", f"{stem}.json")
            self._stats[stem] = storage.read_json(path, self.opts) if storage.exists(path, self.opts) else None
        return self._stats[stem]

    def render(self) -> str:
        sections = [self.header(), self.funnel(), self.removals(), self.errors(), self.languages(), self.scores(),
                    self.deduplication(), self.token_shards(), self.files(), self.time()]
        return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>Sieve report: {_esc(self.summary.get('name', ''))}</title><style>{_CSS}</style></head>"
                "<body><main>" + "\n".join(sections) + "</main></body></html>\n")

    # -- sections

    def header(self) -> str:
        t, s = self.totals, self.summary
        errors = sum(t["errors"].values())
        cards = [("input records", t["records"]), ("documents extracted", t.get("documents", 0)),
                 ("kept by filters", t.get("kept_by_filters", t["kept"]))]
        if self.dedup:
            cards.append(("kept after dedup", t["kept"]))
        if self.tokens:
            cards.append(("tokens", self.tokens.get("total_tokens", 0)))
        cards += [("errors", errors), ("input files", s.get("inputs", len(s.get("files", []))))]
        failed = t.get("failed_files", 0)
        filters = ", ".join(self.cfg.filters) or "none"
        params = [[name, ", ".join(f"{k}={v}" for k, v in p.model_dump(mode="json").items() if k != "enabled")]
                  for name, p in self.cfg.filters.items()]
        return (f"<header><h1>Sieve run <code>{_esc(s.get('name', ''))}</code></h1>"
                f'<div class="meta">output <code>{_esc(s.get("output", self.out))}</code> · config '
                f'<code>{_esc(str(s.get("config_hash", ""))[:12])}</code> · wall time '
                f'{s.get("wall_seconds", 0):,.1f} s · filters: {_esc(filters)}'
                + (f' · <span class="bad">{failed:,} input file(s) failed</span>' if failed else "") + "</div>"
                + "<nav>" + "".join(f'<a href="#{sid}">{_esc(title)}</a>' for sid, title in SECTIONS) + "</nav>"
                + "</header>"
                + '<div class="cards">' + "".join(f"<div class=\"card\"><b>{_num(v)}</b><span>{_esc(k)}</span></div>"
                                                  for k, v in cards) + "</div>"
                + ("<details><summary>filter parameters</summary>"
                   + _table("filter-params", ["filter", "parameters"], params) + "</details>" if params else ""))

    def funnel(self) -> str:
        t = self.totals
        steps = [("input records", t["records"]), ("documents extracted", t.get("documents", 0)),
                 ("kept by filters", t.get("kept_by_filters", t["kept"]))]
        if self.dedup:
            steps.append(("kept after dedup", t["kept"]))
        chart = self.charts.bars([name for name, _ in steps], [v for _, v in steps], "records → documents",
                                 notes=[f"{v:,} ({_pct(v, t['records'])})" for _, v in steps], width=4.4)
        rows = [[name, v, _pct(v, t["records"]), _pct(v, steps[i - 1][1]) if i else ""]
                for i, (name, v) in enumerate(steps)]
        if self.tokens:
            docs = self.tokens.get("total_docs", 0)
            rows.append(["tokens", self.tokens.get("total_tokens", 0), "",
                         f"{self.tokens.get('total_tokens', 0) / docs:,.0f} per document" if docs else ""])
        removed, errors = sum(t["removed"].values()), sum(t["errors"].values())
        balanced = t["kept"] + removed + errors == t["records"]
        check = ('<span class="ok">adds up</span>' if balanced else '<span class="bad">DOES NOT ADD UP</span>')
        notes = []
        if not self.dedup:
            notes.append("dedup was not run")
        if not self.tokens:
            notes.append("no token shards were written")
        return ('<h2 id="funnel">Funnel</h2><div class="two">' + chart
                + _table("funnel-table", ["step", "count", "of records", "of previous step"], rows, numeric=(1, 2, 3))
                + "</div>"
                f"<p>Accounting: kept {t['kept']:,} + removed {removed:,} + errors {errors:,} = "
                f"{t['kept'] + removed + errors:,} of {t['records']:,} input records: {check}"
                + (f' <span class="note">({"; ".join(notes)})</span>' if notes else "") + "</p>")

    def removals(self) -> str:
        removed = self.totals["removed"]
        if not removed:
            return '<h2 id="removals">Removals</h2><p>Nothing was removed.</p>'
        order = [*EARLY_STEPS, *(f"filter: {name}" for name in self.cfg.filters), "dedup"]
        by_group: dict[str, int] = defaultdict(int)
        for reason, n in removed.items():
            by_group[reason_group(reason)] += n
        groups = sorted(by_group, key=lambda g: (order.index(g) if g in order else len(order), g))
        chart = self.charts.bars(groups, [by_group[g] for g in groups], "removed, by pipeline step", color=ORANGE)

        rejected, n_rejected = self.sample.files("rejected")
        examples = self.sample.examples(rejected, ["url", "text"])
        removed_path = storage.join(self.out, "dedup", "removed.parquet")
        if self.dedup and storage.exists(removed_path, self.opts):
            examples.update(self.sample.examples([removed_path], ["url", "survivor_id"]))
        early, late = [], []
        for reason, n in sorted(removed.items(), key=lambda kv: (-kv[1], kv[0])):
            step = reason_group(reason)
            if step in EARLY_STEPS:
                early.append([reason, step, n, _pct(n, self.totals["records"])])
            else:
                late.append([reason, n, _pct(n, self.totals["records"]), self._examples_html(examples.get(reason, []))])
        sampled = (f"Examples drawn from {len(rejected):,} of {n_rejected:,} files in rejected/"
                   if n_rejected > len(rejected) else "Examples drawn from rejected/ and dedup/removed.parquet")
        if not n_rejected and not self.cfg.output.keep_rejected:
            sampled = "No examples: output.keep_rejected is off"
        parts = ['<h2 id="removals">Removals</h2>', chart]
        if late:
            parts += ["<h3>By the filters and dedup</h3>",
                      _table("removals-table", ["reason", "records", "of records", "examples"], late,
                             numeric=(1, 2), raw=(3,), css="wide"),
                      f'<p class="note">{_esc(sampled)}: up to {EXAMPLES_PER_REASON} per reason (seeded sample), '
                      f"first {EXAMPLE_CHARS} characters of the extracted text.</p>"]
        if early:
            parts += ["<h3>Before the filters (records that are not HTML pages with text)</h3>",
                      _table("early-removals-table", ["reason", "step", "records", "of records"], early,
                             numeric=(2, 3))]
        return "".join(parts)

    def _examples_html(self, examples: list[dict[str, Any]]) -> str:
        survivors = {(c.get("survivor") or {}).get("doc_id"): (c.get("survivor") or {}).get("url")
                     for c in self.clusters()}
        shown = []
        for ex in examples:
            survivor = ex.get("survivor_id")
            if "text" in ex:
                body = _esc(_snippet(ex.get("text")))
            elif survivors.get(survivor):
                body = f"duplicate of the kept copy at {_esc(survivors[survivor])}"
            else:
                body = f"duplicate of the kept document <code>{_esc(survivor or '—')}</code>"
            shown.append(f'<div class="ex"><span class="u">{_esc(ex.get("url") or "(no url)")}</span><br>{body}</div>')
        return "".join(shown)

    def errors(self) -> str:
        errors = self.totals["errors"]
        if not errors:
            return '<h2 id="errors">Errors</h2><p class="ok">No errors: every record was read.</p>'
        by_reason = _table("errors-table", ["reason", "records", "of records"],
                           [[r, n, _pct(n, self.totals["records"])] for r, n in
                            sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))], numeric=(1, 2))
        with_errors = sorted((f for f in self.summary.get("files", []) if f["errors"]),
                             key=lambda f: (f["status"] == "ok", -sum(f["errors"].values()), f["input"]))
        rows = []
        for f in with_errors[:MAX_ERROR_FILES]:
            stats = self.file_stats(f["stem"]) or {}
            samples = stats.get("error_samples") or [{"reason": r, "message": "see logs/driver.jsonl"}
                                                     for r in f["errors"]]
            for e in samples[:ERROR_SAMPLES_PER_FILE]:
                offset = e.get("offset")
                rows.append([self.short(f["input"]), e.get("reason", ""), "" if offset is None else offset,
                             e.get("record_id") or "", (e.get("message") or "")[:240]])
        more = len(with_errors) - MAX_ERROR_FILES
        return ('<h2 id="errors">Errors</h2><div class="two">' + by_reason + "</div>"
                "<h3>Samples, with the byte offset of the record in its file</h3>"
                + _table("error-samples", ["file", "reason", "offset", "record", "message"], rows, numeric=(2,),
                         long=(0, 3, 4), css="wide")
                + '<p class="note">' + self.paths_note()
                + 'Every error of an input is in <code>logs/&lt;input&gt;.jsonl</code>; task '
                  "warnings and tracebacks in <code>logs/tasks/</code>, the driver's in "
                  "<code>logs/driver.jsonl</code>."
                + (f" {more:,} more files with errors are not shown." if more > 0 else "") + "</p>")

    def languages(self) -> str:
        languages = sorted(self.totals.get("languages", {}).items(), key=lambda kv: (-kv[1], kv[0]))
        if not languages:
            return '<h2 id="languages">Languages</h2><p>No language signal in this run.</p>'
        total = sum(n for _, n in languages)
        top = languages[:MAX_LANGUAGES]
        rest = total - sum(n for _, n in top)
        labels = [k for k, _ in top] + (["other"] if rest else [])
        values = [n for _, n in top] + ([rest] if rest else [])
        chart = self.charts.bars(labels, values, "documents by language (lid.176)", color=GREEN,
                                 notes=[f"{v:,} ({_pct(v, total)})" for v in values], width=6.0)
        table = _table("languages-table", ["language", "documents", "share"],
                       [[k, n, _pct(n, total)] for k, n in languages], numeric=(1, 2))
        allowed = getattr(self.cfg.filters.get("language"), "allowed", None)
        note = f"kept languages: {', '.join(allowed)}" if allowed else "every language allowed"
        return ('<h2 id="languages">Languages</h2><div class="two">' + chart + table + "</div>"
                f'<p class="note">Documents that reached the filters, by identified language ({_esc(note)}).</p>')

    def scores(self) -> str:
        scores = score_charts(self.cfg)
        columns = [s.column for s in scores]
        kept, removed = self.sample.numbers("documents", columns), self.sample.numbers("rejected", columns)
        charts = []
        for score in scores:
            a, b = kept[score.column], removed[score.column]
            by_rule = removed["reason"] == score.reason
            if np.isnan(a).all() and np.isnan(b).all():
                continue
            charts.append(self.charts.histogram(a[~np.isnan(a)], b[by_rule & ~np.isnan(b)],
                                                b[~by_rule & ~np.isnan(b)], score.title, score.reason, score.threshold))
        if not charts:
            return '<h2 id="scores">Scores</h2><p>No classifier scores in this run (no configured filter ' \
                   'declares a chart: quality, toxicity and language do).</p>'
        skipped = ("Every filter scores every document (annotate.all_signals), so documents removed by another "
                   "rule (grey) have scores too" if self.cfg.annotate.all_signals else
                   "A document removed by a filter skips the later ones (annotate.all_signals is off), so grey "
                   "counts only documents removed by another rule after this score was computed")
        return ('<h2 id="scores">Scores: kept vs removed</h2><div class="charts">' + "".join(charts) + "</div>"
                f'<p class="note">Sample of up to {SCORE_ROWS_PER_FILE:,} documents per file from documents/ '
                f"(kept by the filters) and rejected/. {skipped}; dashed line: the configured threshold.</p>")

    def deduplication(self) -> str:
        d = self.dedup
        if not d:
            return '<h2 id="dedup">Deduplication</h2><p>Dedup was not run.</p>'
        near = d.get("near") or {}
        rows = [["documents in", d.get("docs_in", 0)], ["documents out", d.get("docs_out", 0)]]
        rows += [[f"removed: {r}", n] for r, n in sorted(d.get("removed_by_reason", {}).items())]
        rows += [["clusters with removals", d.get("clusters", 0)],
                 ["near-dup candidate pairs (LSH)", near.get("candidate_pairs", 0)],
                 ["candidate pairs verified", near.get("verified_edges", 0)],
                 ["largest near-dup component", near.get("largest_component", 0)],
                 ["boilerplate lines (in too many documents)", d.get("boilerplate_lines", 0)],
                 ["lines removed", d.get("lines_removed", 0)],
                 ["documents with lines removed", d.get("docs_with_lines_removed", 0)]]
        table = _table("dedup-table", ["measure", "value"], rows, numeric=(1,))
        hist = sorted((int(k), v) for k, v in (d.get("cluster_size_histogram") or {}).items())
        chart = (self.charts.columns([str(k) for k, _ in hist], [v for _, v in hist], "clusters by size",
                                     "documents in the cluster (survivor + removed)") if hist else
                 "<p>No duplicate clusters.</p>")
        lsh = d.get("lsh") or {}
        lsh_note = (f"MinHash {lsh.get('num_perm')} permutations, {lsh.get('bands')} bands × {lsh.get('rows')} rows, "
                    f"Jaccard threshold {lsh.get('threshold')}" if lsh else "")
        return ('<h2 id="dedup">Deduplication</h2><div class="two">' + table + chart + "</div>"
                + (f'<p class="note">{_esc(lsh_note)}</p>' if lsh_note else "") + self._largest_clusters())

    def clusters(self) -> list[dict[str, Any]]:
        """The cluster sample dedup wrote (dedup/clusters.jsonl, at most MAX_CLUSTER_LINES read)."""
        if self._clusters is None:
            self._clusters = []
            path = storage.join(self.out, "dedup", "clusters.jsonl")
            if self.dedup and storage.exists(path, self.opts):
                fs, p = storage.fs_and_path(path, self.opts)
                with fs.open(p, "rt", encoding="utf-8") as fh:
                    for _, line in zip(range(MAX_CLUSTER_LINES), fh):
                        self._clusters.append(json.loads(line))
        return self._clusters

    def _largest_clusters(self) -> str:
        clusters = sorted(self.clusters(), key=lambda c: (-c.get("size", 0), c.get("cluster_id", 0)))[:LARGEST_CLUSTERS]
        if not clusters:
            return ""
        rows = []
        for c in clusters:
            removed = "".join(f'<div class="ex">{_esc(m.get("reason", ""))}: {_esc(m.get("url") or "(no url)")}</div>'
                              for m in c.get("removed", [])[:3])
            more = c.get("size", 0) - 1 - min(3, len(c.get("removed", [])))
            rows.append([c.get("size", 0), (c.get("survivor") or {}).get("url") or "(no url)",
                         removed + (f'<div class="ex">… and {more:,} more</div>' if more > 0 else "")])
        return "<h3>Largest clusters</h3>" + _table("clusters-table", ["size", "kept document", "removed"], rows,
                                                   numeric=(0,), raw=(2,), long=(1,), css="wide")

    def token_shards(self) -> str:
        tok = self.tokens
        if not tok:
            return '<h2 id="tokens">Tokens</h2><p>No token shards were written (tokenizer disabled).</p>'
        info = tok.get("tokenizer") or {}
        rows = [["documents", tok.get("total_docs", 0)], ["tokens", tok.get("total_tokens", 0)],
                ["shards", len(tok.get("shards", []))], ["vocabulary size", tok.get("vocab_size", 0)],
                ["token dtype", tok.get("dtype", "")], ["tokenizer trained on (bytes)", info.get("trained_on_bytes", "")],
                ["tokenizer sha256", str(tok.get("tokenizer_sha256", ""))[:16]]]
        return '<h2 id="tokens">Tokens</h2>' + _table("tokens-table", ["measure", "value"], rows, numeric=(1,))

    def files(self) -> str:
        files = self.summary.get("files", [])
        shown = sorted(files, key=lambda f: (f["status"] == "ok", -sum(f["errors"].values())))[:MAX_FILE_ROWS]
        rows = []
        for f in shown:
            stats = self.file_stats(f["stem"]) or {}
            rows.append([self.short(f["input"]), f["status"], f["records"], stats.get("documents", ""), f["kept"],
                         sum(f["removed"].values()), sum(f["errors"].values()),
                         round(stats["payload_bytes"] / 2**20, 2) if "payload_bytes" in stats else "",
                         stats.get("seconds", "")])
        more = len(files) - len(shown)
        return ('<h2 id="files">Files</h2>'
                + _table("files-table", ["input", "status", "records", "documents", "kept by filters", "removed",
                                         "errors", "HTML MB", "task s"], rows, numeric=range(2, 9), long=(0,),
                         css="wide")
                + '<p class="note">' + self.paths_note()
                + "Failed files and files with errors first. Per-input details: <code>stats/&lt;input&gt;.json</code>."
                + (f" {more:,} more files are not listed." if more > 0 else "") + "</p>")

    def time(self) -> str:
        t, seconds = self.totals, self.summary.get("stage_seconds", {})
        wall = self.summary.get("wall_seconds", 0) or sum(seconds.values())
        mb = t.get("payload_bytes", 0) / 2**20

        def rate(n: float, s: float, unit: str) -> str:
            return f"{_num(float(n / s))} {unit}/s" if s else ""

        throughput = {
            "annotate": ", ".join(x for x in (rate(t["records"], seconds.get("annotate", 0), "records"),
                                              rate(t.get("documents", 0), seconds.get("annotate", 0), "documents"),
                                              rate(mb, seconds.get("annotate", 0), "MB HTML")) if x),
            "dedup": rate(self.dedup.get("docs_in", 0), seconds.get("dedup", 0), "documents"),
            "tokenize": rate(self.tokens.get("total_tokens", 0), seconds.get("tokenize", 0), "tokens"),
        }
        rows = [[stage, s, _pct(s, wall), throughput.get(stage, "")] for stage, s in seconds.items()]
        chart = (self.charts.bars(list(seconds), list(seconds.values()), "seconds per stage", color=GREY,
                                  notes=[f"{s:,.1f} s" for s in seconds.values()], width=4.2) if seconds else "")
        task_s = t.get("task_seconds", 0) or 0
        per_core = (f"Annotate tasks ran {task_s:,.1f} task-seconds: {rate(t.get('documents', 0), task_s, 'documents')} "
                    f"and {rate(mb, task_s, 'MB HTML')} per core ({mb:,.1f} MB of HTML in total)." if task_s else "")
        phases = self.dedup.get("phase_seconds") or {}
        return ('<h2 id="time">Time and throughput</h2><div class="two">'
                + _table("time-table", ["stage", "seconds", "of wall time", "throughput"], rows, numeric=(1, 2))
                + chart + "</div>"
                + (f"<p>{_esc(per_core)}</p>" if per_core else "")
                + (_table("dedup-phases", ["dedup phase", "seconds"], list(phases.items()), numeric=(1,))
                   if phases else "")
                + f'<p class="note">Wall time of this invocation: {wall:,.1f} s. Stages skipped on resume take '
                  "the time to read their stored results.</p>")


def render(cfg: SieveConfig, summary: dict[str, Any]) -> str:
    """The report page as a string."""
    return Report(cfg, summary).render()


def write_report(cfg: SieveConfig, summary: dict[str, Any]) -> str:
    """Render and write OUT/report.html atomically; returns its path."""
    path = storage.join(cfg.output.path, "report.html")
    storage.atomic_write_bytes(path, render(cfg, summary).encode("utf-8"), cfg.input.storage_options)
    return path
