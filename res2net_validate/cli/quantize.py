"""``res2net-validate quantize``: calibrate on image files and write an INT8 Q/DQ graph.

Calls ``int8_graph`` with the calibration source the pytest plugin uses (``graphs.artifacts.
CalibrationSource`` over the preprocessed-image cache), so the same images with the same preprocessing
give the same calibration key from either side and share one cached set of ranges.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..constants import CALIBRATION_METHODS, INT8_GRAPH_FLAVOURS
from ..cache import ArtifactCache
from ..cards import DEFAULT_CARD, load_card
from ..errors import BadImageError, ValidateError
from ..graphs.calibrate import CalibrationSettings, TensorRanges
from ..graphs.quantize import (
    RESIDUAL_ADD_CHOICES,
    WEIGHTED_OPS,
    int8_graph,
    recipe_for,
)
from ..ort_sessions import cpu_session_options, inference_session
from ..settings import command_cache_dir


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="calibrate on a set of images and write an INT8 Q/DQ graph",
        description="Calibrate the FP32 graph on --calib-dir/--calib-list images in one streaming pass "
        "(memory independent of the image count), write the Q/DQ graph for --flavour, and print "
        "the calibration time, peak memory and quantization coverage.",
    )
    parser.add_argument("--graph", required=True, type=Path, metavar="FP32.onnx",
                        help="FP32 ONNX graph (input 'input', output 'output', dynamic batch)")
    parser.add_argument("--method", choices=CALIBRATION_METHODS, default="entropy",
                        help="activation range method (default: entropy, TensorRT-style KL)")
    parser.add_argument("--percentile", type=float, default=99.999, help="for --method percentile (default 99.999)")
    parser.add_argument("--calib-dir", type=Path, metavar="DIR", help="calibration images (searched recursively)")
    parser.add_argument("--calib-list", type=Path, metavar="FILE",
                        help="one image file name per line (MLPerf style), relative to --calib-dir or to FILE's folder")
    parser.add_argument("--calib-count", type=int, metavar="N", help="use the first N images (sorted / list order)")
    parser.add_argument("--calib-batch", type=int, default=CalibrationSettings.batch_size, metavar="N",
                        help=f"images per ONNX Runtime run while calibrating; bounds memory (default {CalibrationSettings.batch_size})")
    parser.add_argument("--flavour", choices=INT8_GRAPH_FLAVOURS, default="onnxruntime",
                        help="onnxruntime (unsigned activations, fastest on ORT CPU) or tensorrt (signed symmetric, "
                        "what TensorRT 11 consumes)")
    parser.add_argument("--residual-add", choices=RESIDUAL_ADD_CHOICES, default=None,
                        help="tensorrt flavour: Q/DQ on both inputs of residual Adds (default), or on the shortcut "
                             "only, as TensorRT's placement advice has it (the Add then fuses into the conv)")
    parser.add_argument("--worst-layers", type=int, default=0, metavar="N",
                        help="also list the N tensors that drift most from FP32 on the sanity images "
                             "(runs both graphs with every tensor exposed; 0: skip)")
    parser.add_argument("--card", default=DEFAULT_CARD, metavar="NAME|FILE",
                        help=f"the card of the graph's model: its preprocessing feeds calibration (default: {DEFAULT_CARD})")
    parser.add_argument("--out", type=Path, metavar="INT8.onnx", help="copy the INT8 graph here")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="artifact cache (default: $CHECKPOINTS_DIR, else the user cache dir)")
    parser.set_defaults(func=_run_cli)


def calibration_file_list(calib_dir: Path | None, calib_list: Path | None, count: int | None) -> tuple[Path, ...]:
    """The calibration images named by the CLI options, in order; one ValidateError per problem.
    Names in --calib-list are looked up under --calib-dir, else beside the list file."""
    from ..data.selection import calibration_files

    if count is not None and count < 1:
        raise ValidateError(f"--calib-count {count}: must be at least 1")
    if calib_list is None and calib_dir is None:
        raise ValidateError("no calibration images: pass --calib-dir DIR (a folder of images) and/or --calib-list FILE")
    base = calib_dir if calib_dir is not None else Path(calib_list).parent
    return calibration_files(base, count, calib_list)


def calibration_source(files: tuple[Path, ...], preprocess, cache: ArtifactCache, progress: bool,
                       batch_size: int = 32):
    """The plugin's ``CalibrationSource`` over ``files``: decoded once into the preprocessed-image cache,
    a memory-mapped file that is read a block at a time (so memory does not grow with the image count),
    and keyed on those pixels and the preprocessing, so a pytest run on the same images reuses the ranges."""
    from ..data.image_cache import preprocess_images
    from ..data.layouts import LabeledImage
    from ..graphs.artifacts import CalibrationSource

    images = tuple(LabeledImage(path, -1) for path in files)  # -1: calibration images have no label
    try:
        preprocessed = preprocess_images(images, preprocess, cache, progress=progress,
                                         description="preprocess calibration")
    except BadImageError as exc:  # the plugin's message offers --skip-bad-images, which this command has not
        raise BadImageError(exc.path, exc.reason) from None
    return CalibrationSource(preprocessed, preprocess, batch_size, f"{len(files)} images")


def _peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _check_is_onnx(graph: Path) -> None:
    """A file protobuf cannot parse (or an empty one, which parses as an empty model) is one clear line."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(graph), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unparsable'}"
    else:
        if model.graph.node:
            return
        problem = "it holds no graph nodes"
    raise ValidateError(f"--graph {graph}: not an ONNX model ({problem}). Pass an FP32 ONNX graph, "
                        "e.g. the fp32 graph `res2net-validate export` prints.")


def _run_cli(args: argparse.Namespace) -> int:
    import shutil
    from collections import Counter

    import onnx

    from ..data.preprocess import Preprocess

    if not args.graph.is_file():
        raise ValidateError(f"--graph {args.graph}: no such file. Pass an FP32 ONNX graph, e.g. the fp32 graph "
                            "`res2net-validate export` prints.")
    _check_is_onnx(args.graph)  # before any calibration image is read
    settings = CalibrationSettings(method=args.method, percentile=args.percentile, batch_size=args.calib_batch)
    # Decided once, here: a wrong combination fails before any image is read, and the build uses this recipe.
    recipe = recipe_for(args.flavour, args.residual_add)
    files = calibration_file_list(args.calib_dir, args.calib_list, args.calib_count)
    preprocess = Preprocess.for_card(load_card(args.card))  # the card's model's published transform
    cache = ArtifactCache(command_cache_dir(args.cache_dir))
    progress = sys.stderr.isatty()
    source = calibration_source(files, preprocess, cache, progress)
    calibrated = []

    def tracked_batches():
        calibrated.append(True)
        return source.batches()

    result = int8_graph(cache, args.graph, tracked_batches, source.key, source.count, settings,
                        args.flavour, progress=progress, batch_size_hint=source.batch_size, recipe=recipe)
    build_peak_gib = _peak_rss_gib()  # before the sanity check and --worst-layers add their own sessions
    ranges = TensorRanges.load(result.ranges_path)
    named_by = f"--calib-list {args.calib_list}" if args.calib_list else f"--calib-dir {args.calib_dir}"
    if calibrated:
        seconds = ranges.seconds["pass"] + ranges.seconds["ranges"]
        timing = source.images.build_timing  # None: the decoded images came from the cache
        decoding = f"decoding {timing['seconds']:.1f} s, " if timing else "decoded images from the cache, "
        print(f"calibration: {len(files)} images from {named_by}, {args.method}, {seconds:.1f} s "
              f"({decoding}{100 * ranges.seconds['pass'] / len(files):.1f} s per 100 images for the pass "
              f"+ {ranges.seconds['ranges']:.1f} s for the {args.method} ranges)")
    else:
        print(f"calibration: {len(files)} images from {named_by}, {args.method}, ranges reused from the cache")
    print(f"ranges: {len(ranges.ranges)} tensors -> {result.ranges_path}")
    model = onnx.load(str(result.path), load_external_data=False)
    ops = Counter(node.op_type for node in model.graph.node)
    weighted = sum(ops[op] for op in WEIGHTED_OPS)
    left = ", ".join(result.unquantized_weights) or "none"
    placement = f", residual Adds: {recipe['residual_add']}" if "residual_add" in recipe else ""
    print(f"int8 graph ({args.flavour}{placement}, {'built' if result.built else 'cached'}): {result.path}")
    print(f"  {ops['QuantizeLinear']} QuantizeLinear, {ops['DequantizeLinear']} DequantizeLinear; "
          f"{weighted - len(result.unquantized_weights)}/{weighted} Conv/Gemm weights in int8 (left in float: {left})")

    # Sanity check, not a score: the graph loads, runs, and follows FP32 on a few calibration images.
    from ..predictions import compare_logits

    sample = next(iter(source.batches()))[:8]
    logits = {}
    for name, path in (("fp32", args.graph), ("int8", result.path)):
        session = inference_session(path, cpu_session_options())
        logits[name] = session.run(["output"], {"input": sample})[0]
    agreement = compare_logits(logits["fp32"], logits["int8"])
    print(f"  sanity vs FP32 on {len(sample)} calibration images (not a score): top-1 agreement "
          f"{agreement['top1_agreement']:.1f} %, logit cosine {agreement['mean_cosine']:.4f}")
    if args.worst_layers > 0:
        from ..graphs.fidelity import layer_comparison

        print(f"  tensors drifting most from FP32 on those {len(sample)} images:")
        for drift in layer_comparison(args.graph, result.path, sample, top=args.worst_layers):
            print(f"    {drift.tensor} ({drift.producer}): cosine {drift.cosine:.4f}, "
                  f"relative error {drift.relative_error:.3f}")
    print(f"peak RSS: {build_peak_gib:.2f} GiB through calibration and writing the graph (the whole process: imports, "
          f"preprocessing, the pass), {_peak_rss_gib():.2f} GiB with the sanity check"
          + (" and the layer comparison" if args.worst_layers > 0 else ""))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.path, args.out)
        print(f"written: {args.out}")
    return 0
