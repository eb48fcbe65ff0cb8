"""The card's FPS figures: the reference marks of the FPS plot when the run's thresholds file has none."""

from __future__ import annotations

from pathlib import Path

from ..errors import ValidateError
from ..thresholds import PACKAGED, load_thresholds

# The packaged res2net50.yaml carries the card's results table (batch 32 on MR-V100) as its FPS floors.
CARD_THRESHOLDS = PACKAGED / "res2net50.yaml"


def reference_fps(thresholds: dict) -> tuple[str, dict[str, dict[str, float]]]:
    """(where from, {device: {precision: fps}}): the FPS floors of the thresholds file the run names,
    when it is readable and has some, else the card's figures."""
    path = thresholds.get("path")
    if path and Path(path).is_file():
        try:
            loaded = load_thresholds(path)
        except ValidateError:
            loaded = None
        if loaded is not None and loaded.performance:
            return f"{Path(path).name}, batch {loaded.batch_size}", loaded.performance
    card = load_thresholds(CARD_THRESHOLDS)
    return f"card, batch {card.batch_size}", card.performance
