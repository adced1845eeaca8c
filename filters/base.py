"""The contract every filter follows: annotate (compute signals) then decide (apply thresholds).

Computing and deciding are separate so that a user can change thresholds and re-decide from the
stored signals (`python -m pipeline.refilter`) without running any model again (the dolma way).
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Mapping, TypeVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

_F = TypeVar("_F", bound=Callable[..., Any])
_batch_caches: list["_BatchCache"] = []


class _BatchCache:
    """A one-argument function cached for the last few arguments, or, inside `batch_caches()`,
    for every argument of the batch."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func
        self.recent = functools.lru_cache(maxsize=4)(func)
        self.batch: dict[Any, Any] | None = None
        functools.update_wrapper(self, func)

    def __call__(self, arg: Any) -> Any:
        if self.batch is None:
            return self.recent(arg)
        try:
            return self.batch[arg]
        except KeyError:
            value = self.batch[arg] = self.func(arg)
            return value

    def cache_clear(self) -> None:
        self.recent.cache_clear()
        if self.batch is not None:
            self.batch.clear()


def batch_cache(func: _F) -> _F:
    """Cache a view of a text that several filters share (word statistics, the classifiers'
    normalized text): for the last few texts, and for a whole batch inside `batch_caches()`."""
    cached = _BatchCache(func)
    _batch_caches.append(cached)
    return cached  # type: ignore[return-value]


@contextmanager
def batch_caches() -> Iterator[None]:
    """Keep the shared views of every text annotated inside the block, and release them after.

    The pipeline annotates documents in batches, filter by filter, so a fastText model or a rule
    set stays in the CPU caches across the batch instead of being evicted by the other filters
    at every document; the views several filters share must then last for the whole batch. The
    memory they take is bounded by the batch the caller builds.
    """
    for cache in _batch_caches:
        cache.batch = {}
    try:
        yield
    finally:
        for cache in _batch_caches:
            cache.batch = None


def file_sha256(name_or_path: str) -> str:
    """sha256 of a model (registry name or path) or data file: the registry's pin for a model
    downloaded on first use (the download checks it), else read from the file (once per process
    and file version)."""
    from filters.models import REGISTRY, resolve_model

    spec = REGISTRY.get(name_or_path)
    if spec is not None and spec.kind == "url" and spec.sha256:
        return spec.sha256
    path = resolve_model(name_or_path)
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    from pathlib import Path

    from filters.models import sha256_of

    return sha256_of(Path(path))


class FilterParams(BaseModel):
    """Base of every filter's parameters: unknown keys are refused, values are type-checked.

    A parameter is either a *signal* parameter (it changes how a signal is computed: a model, an
    n-gram size) or a *decision* parameter (a threshold applied to stored signals). Subclasses name
    their decision parameters in `decisions`; every other field is a signal parameter, so a new
    field is treated as one (changing it recomputes the signals) until declared otherwise.
    `files` names the signal parameters that point at a model or data file: the file's sha256,
    not only its name, identifies the signals.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    decisions: ClassVar[tuple[str, ...]] = ()
    files: ClassVar[tuple[str, ...]] = ()

    enabled: bool = True

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        unknown = [name for name in (*cls.decisions, *cls.files) if name not in cls.model_fields]
        if unknown:
            raise TypeError(f"{cls.__qualname__}: decisions/files name unknown fields {unknown}")

    def signal_params(self) -> dict[str, Any]:
        """The parameters that shape this filter's signals (JSON values)."""
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if k != "enabled" and k not in self.decisions}

    def decision_params(self) -> dict[str, Any]:
        """The thresholds applied to the stored signals (JSON values)."""
        data = self.model_dump(mode="json")
        return {k: data[k] for k in self.decisions}


@dataclass
class Document:
    """One extracted web document travelling through the filters."""

    doc_id: str
    text: str
    url: str = ""
    signals: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chart:
    """A histogram the run report draws for one signal column in [0, 1]: kept vs removed by
    `reason` vs removed by another rule, with the threshold `threshold` (a decision parameter)."""

    column: str
    title: str
    threshold: str
    reason: str


_REGISTRY: dict[str, type["DocFilter"]] = {}


def registered() -> dict[str, type["DocFilter"]]:
    """Every filter class defined so far, by config name (see `filters.registry`, which first
    imports every module of the package)."""
    return dict(_REGISTRY)


class DocFilter:
    """One block of the curation chain: the class alone makes a filter.

    A subclass sets `name` (its config key under `filters:`; defining the class registers it),
    `Params`, `order`, `reasons` and `charts`, and implements `signal_schema` and `annotate`;
    it implements `decide` unless it only computes signals for a later stage (MinHash).
    `annotate` may rewrite `doc.text` (PII masking does) and must add exactly the fields of
    `signal_schema()` to `doc.signals`. `decide` looks only at signals, so it also works on
    signals read back from Parquet. Models load lazily in `annotate`, never in `__init__`, so that
    building a filter to re-decide is cheap.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[FilterParams]] = FilterParams
    # Bump when the code computing this filter's signals changes what it stores: stored signals of
    # another version are recomputed on rerun, never re-decided as if they were current.
    version: ClassVar[int] = 1
    # Default run position, low first: cheap filters that remove many documents early (a removed
    # document skips the later filters), text rewriters before the filters that should see their
    # text, signals for global stages last (they describe the final text).
    order: ClassVar[int] = 500
    # The rules `decide` can name: it returns `f"{name}:{rule}"` for one of these.
    reasons: ClassVar[tuple[str, ...]] = ()
    charts: ClassVar[tuple[Chart, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.name:
            return  # an abstract helper class
        other = _REGISTRY.get(cls.name)
        if other is not None and (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TypeError(f"filter name {cls.name!r}: defined by both {other.__module__}.{other.__qualname__} "
                            f"and {cls.__module__}.{cls.__qualname__}")
        if cls.decide is not DocFilter.decide and not cls.reasons:
            raise TypeError(f"{cls.__qualname__}: a filter that decides declares its `reasons`")
        for chart in cls.charts:
            if chart.threshold not in cls.Params.model_fields or chart.reason not in cls.reasons:
                raise TypeError(f"{cls.__qualname__}: chart {chart.column!r} names an unknown threshold or reason")
        _REGISTRY[cls.name] = cls

    def __init__(self, params: FilterParams | Mapping[str, Any] | None = None) -> None:
        if params is None:
            params = self.Params()
        elif not isinstance(params, FilterParams):
            params = self.Params(**params)
        self.params = params

    def signal_schema(self) -> list[pa.Field]:
        """The Parquet columns this filter adds (stable across documents and files).

        Floats are float64: a signal read back from Parquet must decide exactly as it did in
        memory (0.12 stored as float32 reads back as 0.1199999 and would flip a `< 0.12` rule).
        """
        raise NotImplementedError

    def annotate(self, doc: Document) -> None:
        """Compute this filter's signals into `doc.signals` (may rewrite `doc.text`)."""
        raise NotImplementedError

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        """None to keep, else the removal reason `f"{name}:{rule}"`, `rule` one of `reasons`
        (e.g. `"gopher:word_count"`). By default it keeps every document: a filter that only
        computes signals for a later stage needs no decision."""
        return None

    def has_signals(self, signals: Mapping[str, Any]) -> bool:
        """Whether `signals` (a document's, maybe read back from Parquet) hold this filter's: a
        document removed by an earlier filter skips the later ones unless `annotate.all_signals`,
        and their columns are then all null."""
        return any(signals.get(name) is not None for name in self._signal_names)

    @functools.cached_property
    def _signal_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.signal_schema())

    def provenance(self) -> dict[str, Any]:
        """What computed this filter's signals: name, version, signal parameters and the sha256 of
        each model or data file they name. Stored with the signals (Parquet metadata, stats)."""
        files = {key: file_sha256(value) for key in self.params.files
                 if (value := getattr(self.params, key)) is not None}
        return {"filter": self.name, "version": self.version, "params": self.params.signal_params(), "files": files}

