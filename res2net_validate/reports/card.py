"""The card's FPS figures: the reference marks of the FPS plot when the run's thresholds file has none."""

from __future__ import annotations

from pathlib import Path

from ..errors import ValidateError
from ..cards import DEFAULT_CARD, card_path, thresholds_of

# Runs recorded before cards named theirs are of the first card, whose results table (batch 32 on MR-V100)
# its FPS floors carry.


def reference_fps(thresholds: dict) -> tuple[str, dict[str, dict[str, float]]]:
    """(where from, {device: {precision: fps}}): the FPS floors of the thresholds file the run names,
    when it is readable and has some, else the card's figures."""
    path = thresholds.get("path")
    if path and Path(path).is_file():
        try:
            loaded = thresholds_of(path)
        except ValidateError:
            loaded = None
        if loaded is not None and loaded.performance:
            return f"{Path(path).name}, batch {loaded.batch_size}", loaded.performance
    card = thresholds_of(card_path(DEFAULT_CARD))
    return f"card, batch {card.batch_size}", card.performance
