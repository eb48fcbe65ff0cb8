"""``res2net-validate export``: the FP32 and FP16 ONNX graphs of a checkpoint.

Calls ``fp32_graph`` and ``fp16_graph``, as the session's ``graphs.artifacts.Artifacts`` does.
"""

from __future__ import annotations

from pathlib import Path

from ..cache import ArtifactCache
from ..cards import DEFAULT_CARD, load_card
from ..errors import ValidateError
from ..graphs.export import fp16_graph, fp32_graph
from ..settings import command_cache_dir


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a checkpoint to the FP32 and FP16 ONNX graphs (cached)",
        description="Export --weights to a simplified FP32 ONNX graph with a dynamic batch and convert it to FP16 "
                    "(float32 I/O); print the cached paths and each graph's check against its reference.")
    parser.add_argument("--weights", required=True, type=Path, help="a checkpoint of the card's model")
    parser.add_argument("--card", default=DEFAULT_CARD, metavar="NAME|FILE",
                        help=f"the card whose model the checkpoint holds (default: {DEFAULT_CARD})")
    parser.add_argument("--cache-dir", type=Path, help="artifact cache (default: $CHECKPOINTS_DIR or the user cache)")
    parser.set_defaults(func=_run_cli)


def _run_cli(args) -> int:
    if not args.weights.is_file():
        raise ValidateError(f"--weights {args.weights}: no such file")
    card = load_card(args.card)
    cache = ArtifactCache(command_cache_dir(args.cache_dir))
    fp32 = fp32_graph(cache, args.weights, card.model_key, release=card.checkpoint_file)
    fp16 = fp16_graph(cache, fp32)
    for graph in (fp32, fp16):
        state = "built" if graph.built else "cached"
        print(f"{graph.precision}: {graph.path} ({state}; vs {graph.check.reference}: "
              f"max |diff| {graph.check.max_abs_diff:.2e})")
    return 0
