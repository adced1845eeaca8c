"""Config: typed, validated, refused with key path + suggestion before any work starts."""
from __future__ import annotations

import pytest

from pipeline.config import ConfigError, apply_override, load_config, parse_config

MINIMAL = {"input": {"paths": ["a.warc.gz"]}}


def test_defaults_and_hash_are_stable():
    a, b = parse_config(MINIMAL), parse_config({"input": {"paths": ["a.warc.gz"]}})
    assert a.hash() == b.hash()
    assert a.dedup.near.threshold == 0.8
    assert a.output.keep_rejected is True


def test_hash_ignores_cpu_count_but_not_thresholds():
    base = parse_config(MINIMAL)
    more_cpus = parse_config({**MINIMAL, "run": {"num_cpus": 8}})
    other_threshold = parse_config({**MINIMAL, "dedup": {"near": {"threshold": 0.7}}})
    assert base.hash() == more_cpus.hash()
    assert base.hash() != other_threshold.hash()


def test_filter_parameters_are_dumped_and_hashed():
    a = parse_config({**MINIMAL, "filters": {"quality": {"min_score": 0.3}}})
    b = parse_config({**MINIMAL, "filters": {"quality": {"min_score": 0.6}}})
    assert a.dump()["filters"]["quality"]["min_score"] == 0.3
    assert a.hash() != b.hash()
    assert parse_config(a.dump()).filters["quality"].min_score == 0.3  # round trip (config.json)


def test_filter_order_is_declared_by_the_classes_unless_the_config_orders_them():
    a = parse_config({**MINIMAL, "filters": {"gopher": {}, "fineweb": {}}})
    b = parse_config({**MINIMAL, "filters": {"fineweb": {}, "gopher": {}}})
    assert list(a.filters) == list(b.filters) == ["gopher", "fineweb"]  # GopherFilter.order < FineWebFilter.order
    assert a.hash() == b.hash()
    c = parse_config({**MINIMAL, "filters": {"gopher": {}, "fineweb": {}}, "annotate": {"order": ["fineweb", "gopher"]}})
    assert list(c.filters) == ["fineweb", "gopher"]
    assert a.hash() != c.hash()
    assert list(parse_config(c.dump()).filters) == ["fineweb", "gopher"]  # round trip (config.json)
    with pytest.raises(ConfigError, match="annotate.order"):
        parse_config({**MINIMAL, "filters": {"gopher": {}, "fineweb": {}}, "annotate": {"order": ["gopher"]}})


def test_unknown_filter_and_filter_key_are_refused_with_the_key():
    with pytest.raises(ConfigError, match="unknown filter 'qualty'.*'quality'"):
        parse_config({**MINIMAL, "filters": {"qualty": {}}})
    with pytest.raises(ConfigError, match="filters.quality: unknown key 'min_scor'.*'min_score'"):
        parse_config({**MINIMAL, "filters": {"quality": {"min_scor": 0.5}}})


def test_unknown_key_names_path_and_suggests():
    with pytest.raises(ConfigError) as err:
        parse_config({"input": {"paths": ["x"]}, "dedup": {"near": {"treshold": 0.5}}})
    assert "dedup.near.treshold" in str(err.value)
    assert "threshold" in str(err.value)


def test_unknown_section_suggests():
    with pytest.raises(ConfigError, match="tokenizer"):
        parse_config({**MINIMAL, "tokeniser": {}})


def test_wrong_type_and_bad_value_refused():
    with pytest.raises(ConfigError, match="run.num_cpus"):
        parse_config({**MINIMAL, "run": {"num_cpus": "many"}})
    with pytest.raises(ConfigError, match="dedup.near.threshold"):
        parse_config({**MINIMAL, "dedup": {"near": {"threshold": 1.5}}})


def test_input_required():
    with pytest.raises(ConfigError, match="input"):
        parse_config({})
    with pytest.raises(ConfigError, match="input.paths or input.paths_listing"):
        parse_config({"input": {}})


def test_unknown_filter_suggests_name():
    with pytest.raises(ConfigError, match="gopher"):
        parse_config({**MINIMAL, "filters": {"gophr": {}}})


def test_overrides_parse_yaml_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("input:\n  paths: [a.warc.gz]\n")
    cfg = load_config(path, ["dedup.near.threshold=0.7", "run.num_cpus=3", "output.keep_rejected=false",
                             "input.paths=[x.warc, y.warc]"])
    assert cfg.dedup.near.threshold == 0.7
    assert cfg.run.num_cpus == 3
    assert cfg.output.keep_rejected is False
    assert cfg.input.paths == ["x.warc", "y.warc"]


def test_bad_override_and_missing_file(tmp_path):
    raw: dict = {"run": 3}
    with pytest.raises(ConfigError, match="not a section"):
        apply_override(raw, "run.name=x")
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_override({}, "nonsense")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", ["sample.yaml", "cc.yaml"])
def test_shipped_configs_validate(name):
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / name)
    assert cfg.input.paths or cfg.input.paths_listing


def test_a_filter_class_alone_registers_validates_orders_and_charts():
    """Adding a filter is one class: the registry, the config section, the order and the report's
    histogram come from it (no list elsewhere names it)."""
    from typing import Any, Mapping

    import pyarrow as pa
    from pydantic import Field

    from filters import Chart, DocFilter, FilterParams, filter_class
    from pipeline.report.page import score_charts

    class ShoutFilter(DocFilter):
        name = "test_shout"
        order = 1
        reasons = ("upper",)
        charts = (Chart("shout_upper_frac", "upper-case share", "max_upper_frac", "upper"),)

        class Params(FilterParams):
            decisions = ("max_upper_frac",)
            max_upper_frac: float = Field(0.5, ge=0, le=1)

        def signal_schema(self) -> list[pa.Field]:
            return [pa.field("shout_upper_frac", pa.float64())]

        def annotate(self, doc: Any) -> None:
            doc.signals["shout_upper_frac"] = sum(c.isupper() for c in doc.text) / max(len(doc.text), 1)

        def decide(self, signals: Mapping[str, Any]) -> str | None:
            return "test_shout:upper" if signals["shout_upper_frac"] > self.params.max_upper_frac else None

    assert filter_class("test_shout") is ShoutFilter
    cfg = parse_config({**MINIMAL, "filters": {"language": {}, "test_shout": {"max_upper_frac": 0.2}}})
    assert list(cfg.filters) == ["test_shout", "language"]  # order 1 runs before language (10)
    assert cfg.filters["test_shout"].decision_params() == {"max_upper_frac": 0.2}
    assert [(c.column, c.threshold, c.reason) for c in score_charts(cfg)][0] == ("shout_upper_frac", 0.2, "test_shout:upper")
    with pytest.raises(ConfigError, match="filters.test_shout: unknown key 'max_upper'"):
        parse_config({**MINIMAL, "filters": {"test_shout": {"max_upper": 0.2}}})
    with pytest.raises(TypeError, match="declares its `reasons`"):
        type("Undeclared", (DocFilter,), {"name": "test_undeclared", "decide": lambda self, s: None})
    with pytest.raises(TypeError, match="defined by both"):
        type("Other", (DocFilter,), {"name": "test_shout"})
