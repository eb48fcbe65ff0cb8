"""Sample ImageNet val folders: real JPEG files with canonical names and labels.

For tests, benchmarks and demos only; the plugin never writes one.  Every layout that
``dataset.discover`` reads can be written, labelled with the canonical ground truth, so
each layout -- and the cross-check -- sees a consistent dataset.
"""

from __future__ import annotations

from pathlib import Path

from ..imagenet import canonical_val_labels, canonical_wnids
from .layouts import CARD_LABEL_FILE, KAGGLE_LABEL_FILE

SAMPLE_LAYOUTS = ("card", "card-flat", "imagefolder", "flat", "kaggle")


def write_sample_dataset(
    root: str | Path,
    count: int = 40,
    layout: str = "card",
    size: tuple[int, int] = (375, 500),
    seed: int = 0,
    first: int = 1,
    quality: int = 90,
) -> list[tuple[str, int]]:
    """Write ``count`` JPEGs named ``ILSVRC2012_val_{first..}.JPEG`` in ``layout``; return (name, label) pairs.

    The pictures are smooth random colour fields with some texture (they compress like photos,
    about 100 kB at 500x375), labelled with the canonical ground truth, so every layout -- and the
    cross-check -- sees a consistent dataset.  ``size`` is (height, width).
    """
    import numpy as np
    from PIL import Image

    if layout not in SAMPLE_LAYOUTS:
        raise ValueError(f"layout {layout!r}: use one of {SAMPLE_LAYOUTS}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    wnids, truth = canonical_wnids(), canonical_val_labels()
    height, width = size
    pairs = []
    for number in range(first, first + count):
        stem = f"ILSVRC2012_val_{number:08d}"
        label = truth[stem]
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
        field += rng.integers(-12, 13, field.shape, dtype=np.int16)
        picture = Image.fromarray(field.clip(0, 255).astype(np.uint8))
        folder = root / wnids[label] if layout in ("card", "imagefolder") else root
        if layout == "kaggle":
            folder = root / "ILSVRC" / "Data" / "CLS-LOC" / "val"
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"{stem}.JPEG", quality=quality)
        pairs.append((f"{stem}.JPEG", label))
    if layout in ("card", "card-flat"):
        (root / CARD_LABEL_FILE).write_text("".join(f"{name}\t{label}\n" for name, label in pairs))
    elif layout == "kaggle":
        rows = [f"{Path(name).stem},{wnids[label]} 1 2 100 120\n" for name, label in pairs]
        (root / KAGGLE_LABEL_FILE).write_text("ImageId,PredictionString\n" + "".join(rows))
    return pairs
