"""``res2net-validate embedded``: generate (or find) the embedded default.

Calls ``ensure_embedded_default``, as the session does for ``--embedded``: the same cache entry.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cache import ArtifactCache
from ..cards import DEFAULT_CARD, load_card
from ..embedded.default import DEFAULT_PARAMS, INFO_FILE, ensure_card_default
from ..settings import command_cache_dir


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embedded",
        help="generate (or find) the embedded default: a labelled JPEG set and a stand-in checkpoint",
        description="Generate, once per cache, the embedded default that --embedded runs on: "
        f"{DEFAULT_PARAMS.num_images} JPEGs of {DEFAULT_PARAMS.num_classes} procedural classes in the card's "
        "layout and a stand-in checkpoint of the card's model fitted on separate generated images. "
        "Prints where they are.",
    )
    parser.add_argument("--card", default=DEFAULT_CARD, metavar="NAME|FILE",
                        help=f"the card whose model the stand-in is (default: {DEFAULT_CARD})")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="artifact cache (default: $CHECKPOINTS_DIR, else the user cache dir)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    cache = ArtifactCache(command_cache_dir(args.cache_dir))
    card = load_card(args.card)
    default = ensure_card_default(cache, card, progress=not args.quiet)
    info = json.loads((default.dataset_dir.parent / INFO_FILE).read_text())
    print(f"dataset:  {default.dataset_dir}  ({default.num_images} images, card layout)")
    print(f"weights:  {default.weights}  (stand-in {card.model_key}, card {card.name})")
    print("classes:  " + ", ".join(f"{c['label']} {c['concept']}" for c in info["classes"]))
    print(f"stand-in head fitted on {info['train_images']} separate generated images "
          f"(training Top-1 {info['train_top1']}%)")
    return 0
