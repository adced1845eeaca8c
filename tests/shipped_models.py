"""Retrain a shipped model from the recipe stored in its metrics file (the retrain tests share this)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from filters.train import main as train_main

MODELS = Path(__file__).resolve().parents[1] / "filters/models"


def retrain_shipped(name: str, shared_data: Path, out_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(shipped metrics, metrics of the model retrained into `out_dir` by the same recipe)."""
    shipped = json.loads((MODELS / f"{name}.metrics.json").read_text())
    recipe = shipped["recipe"][3:]
    recipe[recipe.index("--out") + 1] = str(out_dir / f"{name}.ftz")
    assert train_main(recipe + ["--data-root", str(shared_data)]) == 0
    return shipped, json.loads((out_dir / f"{name}.metrics.json").read_text())
