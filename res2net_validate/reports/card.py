"""The card's FPS figures: the reference marks of the FPS plot when the run's thresholds file has none."""

from __future__ import annotations

from pathlib import Path

# Res2Net50 model-zoo card, results table: batch 32 on MR-V100 (/work/shared/seed/res2net50-card.md).
CARD_FPS = {"MR-V100": {"fp16": 921.37, "int8": 1933.74}}
CARD_BATCH_SIZE = 32


def reference_fps(thresholds: dict) -> tuple[str, dict[str, dict[str, float]]]:
    """(where from, {device: {precision: fps}}): the FPS floors of the thresholds file the run names,
    when it is readable and has some, else the card's figures."""
    path = thresholds.get("path")
    if path and Path(path).is_file():
        from ..errors import ValidateError
        from ..thresholds import load_thresholds

        try:
            loaded = load_thresholds(path)
        except ValidateError:
            loaded = None
        if loaded is not None and loaded.performance:
            return f"{Path(path).name}, batch {loaded.batch_size}", loaded.performance
    return f"card, batch {CARD_BATCH_SIZE}", CARD_FPS
