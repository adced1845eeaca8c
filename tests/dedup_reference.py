"""A single-process reference for the dedup stage: the whole corpus in memory, plain loops and
scipy, no Ray, no partitions. The distributed stage must remove exactly what this removes, in
favour of the same survivors."""
from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq

from filters.dedup import (
    band_keys,
    bucket_pairs,
    components_in_rank_order,
    connected_components,
    distinct_line_keys,
    exact_jaccard,
    lsh_params,
    remove_lines,
    shingle_hashes,
    split_component,
    text_hash,
)


def reference_dedup(files: list[str], *, threshold: float = 0.8, num_perm: int = 128, verify_with: str = "text",
                    by_url: bool = False, max_repeats: int = 10, min_line_chars: int = 10,
                    hubs: int = 8) -> dict[str, tuple[str, str | None]]:
    """{removed doc_id: (reason, final survivor doc_id or None)} under the default survivor policy
    (quality_score high, text long, doc_id small) with defaults matching the stage's config."""
    docs = [row for path in files for row in pq.read_table(path).to_pylist()]
    n = len(docs)
    quality = [d.get("quality_score") for d in docs]
    key = [(-(q if q is not None and not math.isnan(q) else -math.inf), -len(d["text"]), d["doc_id"], i)
           for i, (d, q) in enumerate(zip(docs, quality))]
    order = sorted(range(n), key=lambda i: key[i])
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    survivor, reason = list(range(n)), [""] * n

    def exact(values: list, label: str, eligible) -> None:
        best: dict = {}
        for i in order:
            if reason[i] or not eligible(i):
                continue
            if values[i] in best:
                survivor[i], reason[i] = best[values[i]], label
            else:
                best[values[i]] = i

    if by_url:
        exact([d["url"] for d in docs], "dedup:url", lambda i: bool(docs[i]["url"]))
    exact([text_hash(d["text"]) for d in docs], "dedup:exact", lambda i: True)

    alive = [i for i in range(n) if not reason[i]]
    sigs = np.stack([np.asarray(docs[i]["minhash"], np.uint32) for i in alive])
    bands, rows = lsh_params(threshold, num_perm, 0.99)
    keys = band_keys(sigs, bands, rows).reshape(-1)
    pairs = bucket_pairs(keys, np.repeat(np.array(alive, np.int64), bands), hubs)
    sets = {i: shingle_hashes(docs[i]["text"]) for i in np.unique(pairs)} if verify_with == "text" else {}

    def similar(a: int, b: int) -> bool:
        if verify_with == "text":
            return exact_jaccard(sets[a], sets[b]) >= threshold
        return int((np.asarray(docs[a]["minhash"]) == np.asarray(docs[b]["minhash"])).sum()) >= threshold * num_perm

    edges = np.array([p for p in pairs if similar(int(p[0]), int(p[1]))], np.int64).reshape(-1, 2)
    nodes = np.unique(edges)
    labels = connected_components(len(nodes), np.searchsorted(nodes, edges))
    for members in components_in_rank_order(labels, rank[nodes]):
        members = nodes[members]
        if len(members) == 2:
            centers = members[[0, 0]]
        else:
            centers = split_component(members, lambda c, others: np.array([similar(c, int(o)) for o in others]))
        for m, c in zip(members, centers):
            if m != c:
                survivor[m], reason[m] = int(c), "dedup:near"

    alive = [i for i in range(n) if not reason[i]]
    counts: dict[int, int] = {}
    for i in alive:
        for k in distinct_line_keys(docs[i]["text"], min_line_chars):
            counts[k] = counts.get(k, 0) + 1
    boilerplate = {k for k, c in counts.items() if c > max_repeats}
    for i in alive:
        if not remove_lines(docs[i]["text"], boilerplate, min_line_chars)[0].strip():
            reason[i] = "dedup:empty_after_line_dedup"

    def final(i: int) -> int:
        while reason[survivor[i]] and survivor[i] != i and reason[survivor[i]] != "dedup:empty_after_line_dedup":
            i = survivor[i]
        return survivor[i]

    return {docs[i]["doc_id"]: (reason[i], None if reason[i] == "dedup:empty_after_line_dedup"
                                else docs[final(i)]["doc_id"]) for i in range(n) if reason[i]}
