"""INT8 figures in one run: calibration memory and time, CPU throughput per precision, accuracy.

    python benchmarks/bench_int8.py                      # speed + calibration time + accuracy
    python benchmarks/bench_int8.py --section rss        # peak RSS of calibrating 100..1000 images (minutes)
    python benchmarks/bench_int8.py --section speed --rounds 5
    python benchmarks/bench_int8.py --section kernel     # INT8/FP32 GEMM ceiling of this CPU (seconds)

The model is the embedded default's stand-in checkpoint when ``embedded.ensure_embedded_default``
is available, else ``--weights``, else timm's seeded random init (then accuracy is skipped: it
would mean nothing).  The CPU is shared: every comparison runs side by side in one process,
interleaved round by round, and reports the best round of each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from res2net_validate.cache import ArtifactCache
from res2net_validate.constants import CALIBRATION_METHODS, INT8_GRAPH_FLAVOURS
from res2net_validate.graphs.calibrate import CalibrationSettings, collect_ranges
from res2net_validate.graphs.export import fp16_graph, fp32_graph
from res2net_validate.graphs.quantize import int8_graph
from res2net_validate.ort_sessions import cpu_session_options


def image_like_batches(num_images: int, batch_size: int = 32, seed: int = 0, size: int = 224):
    """Normalised batches of smooth random pictures, generated on the fly (nothing is held):
    blocky colour fields with noise, uint8 like a decoded JPEG, then ImageNet normalisation."""
    rng = np.random.default_rng(seed)
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1) * 255
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1) * 255
    for start in range(0, num_images, batch_size):
        n = min(batch_size, num_images - start)
        coarse = rng.integers(0, 256, size=(n, 3, size // 16, size // 16)).astype(np.float32)
        pixels = coarse.repeat(16, axis=2).repeat(16, axis=3)
        pixels += rng.normal(0, 12, size=pixels.shape).astype(np.float32)
        yield (np.clip(pixels, 0, 255).round() - mean) / std


def model_source(cache: ArtifactCache, weights: Path | None):
    """(weights path, embedded default or None, description)."""
    if weights is not None:
        return weights, None, f"weights {weights}"
    try:
        from res2net_validate.embedded.default import ensure_embedded_default
    except ImportError:
        ensure_embedded_default = None
    if ensure_embedded_default is not None:
        embedded = ensure_embedded_default(cache)
        return embedded.weights, embedded, "embedded default (stand-in checkpoint, generated images)"
    import torch

    from res2net_validate.graphs.checkpoint import create_model

    torch.manual_seed(0)
    path = cache.root / "bench-random-init.pth"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(create_model().state_dict(), path)
    return path, None, "timm seeded random init (embedded default not available: accuracy skipped)"


def sessions(paths: dict[str, Path]):
    import onnxruntime as ort

    return {name: ort.InferenceSession(str(p), cpu_session_options(), providers=["CPUExecutionProvider"])
            for name, p in paths.items()}


def bench_speed(graphs: dict[str, Path], batch: int, rounds: int) -> dict:
    x = next(image_like_batches(batch, batch_size=batch, seed=1))
    runs = sessions(graphs)
    for session in runs.values():  # warm-up: allocations, prepacked weights
        session.run(["output"], {"input": x})
    times = {name: [] for name in runs}
    for _ in range(rounds):  # interleaved, so a noisy neighbour hits every precision alike
        for name, session in runs.items():
            start = time.perf_counter()
            session.run(["output"], {"input": x})
            times[name].append(time.perf_counter() - start)
    fps = {name: batch / min(t) for name, t in times.items()}
    return {
        name: {"fps_best": round(fps[name], 2), "fps_median": round(batch / float(np.median(t)), 2),
               "vs_fp32": round(fps[name] / fps["fp32"], 2)}
        for name, t in times.items()
    }


def bench_kernel_ceiling(size: int = 1024, rounds: int = 10) -> dict:
    """GEMM throughput of ONNX Runtime's integer kernels against its FP32 kernel on this CPU.

    One large square MatMul (FP32) and MatMulInteger (u8 x s8, u8 x u8, s8 x s8) each, with the
    same session options as the model, interleaved round by round.  Large GEMMs are where INT8
    gains most, so ``vs_fp32`` bounds what any INT8 graph can gain over FP32 here: on an x86 CPU
    without VNNI, u8 x s8 runs through vpmaddubsw/vpmaddwd, and s8 x s8 has no fast path at all.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    cases = {  # name: (activation dtype, weight dtype, onnx op)
        "fp32": (np.float32, np.float32, "MatMul"),
        "u8s8": (np.uint8, np.int8, "MatMulInteger"),
        "u8u8": (np.uint8, np.uint8, "MatMulInteger"),
        "s8s8": (np.int8, np.int8, "MatMulInteger"),
    }
    runs = {}
    for name, (a_type, w_type, op) in cases.items():
        info = np.iinfo(w_type) if w_type != np.float32 else None
        weight = (rng.standard_normal((size, size)).astype(np.float32) if info is None
                  else rng.integers(info.min // 2, info.max // 2, (size, size)).astype(w_type))
        out_type = TensorProto.FLOAT if op == "MatMul" else TensorProto.INT32
        graph = helper.make_graph(
            [helper.make_node(op, ["a", "w"], ["y"])], name,
            [helper.make_tensor_value_info("a", helper.np_dtype_to_tensor_dtype(np.dtype(a_type)), [size, size])],
            [helper.make_tensor_value_info("y", out_type, [size, size])],
            [numpy_helper.from_array(weight, "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        session = ort.InferenceSession(model.SerializeToString(), cpu_session_options(),
                                       providers=["CPUExecutionProvider"])
        activations = (rng.standard_normal((size, size)).astype(np.float32) if a_type == np.float32
                       else rng.integers(0, 100, (size, size)).astype(a_type))
        session.run(None, {"a": activations})
        runs[name] = (session, activations)
    best = {name: float("inf") for name in runs}
    for _ in range(3):  # blocks of consecutive runs (warm caches), the blocks alternate between kernels
        for name, (session, activations) in runs.items():
            for _ in range(rounds):
                start = time.perf_counter()
                session.run(None, {"a": activations})
                best[name] = min(best[name], time.perf_counter() - start)
    gmacs = {name: size ** 3 / seconds / 1e9 for name, seconds in best.items()}
    return {name: {"gmac_per_s": round(g, 1), "vs_fp32": round(g / gmacs["fp32"], 2)} for name, g in gmacs.items()}


def print_kernel_ceiling() -> dict:
    ceiling = bench_kernel_ceiling()
    print("GEMM 1024^3 kernel ceiling (the most INT8 can gain over FP32 on this CPU):")
    print(json.dumps(ceiling, indent=1), flush=True)
    return ceiling


def bench_calibration_time(fp32: Path, images: int) -> dict:
    out = {}
    for method in CALIBRATION_METHODS:
        ranges = collect_ranges(fp32, image_like_batches(images), CalibrationSettings(method=method), progress=False)
        out[method] = {"pass_s_per_100": round(100 * ranges.seconds["pass"] / images, 1),
                       "ranges_s": round(ranges.seconds["ranges"], 1), "images": images}
    return out


def rss_child(fp32: Path, images: int, method: str) -> None:
    import resource

    start = time.perf_counter()
    ranges = collect_ranges(fp32, image_like_batches(images), CalibrationSettings(method=method), progress=False)
    print(json.dumps({"images": ranges.num_images, "seconds": time.perf_counter() - start,
                      "self_maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def bench_rss(fp32: Path, sizes: list[int], method: str) -> list[dict]:
    rows = []
    for images in sizes:
        child = subprocess.Popen([sys.executable, __file__, "--section", "rss-child", "--graph", str(fp32),
                                  "--images", str(images), "--method", method], stdout=subprocess.PIPE, text=True)
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
        child.stdout.close()
        if status != 0:
            raise SystemExit(f"RSS child for {images} images failed (status {status})")
        row = json.loads(output.strip().splitlines()[-1])
        row["peak_rss_gb"] = round(usage.ru_maxrss / 2**20, 2)
        row["s_per_100"] = round(100 * row.pop("seconds") / images, 1)
        row.pop("self_maxrss_gb")
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def bench_accuracy(cache: ArtifactCache, embedded, fp32: Path, fp16: Path, methods, layers: int) -> dict:
    import onnxruntime as ort

    from res2net_validate.data.layouts import discover
    from res2net_validate.graphs.fidelity import layer_comparison
    from res2net_validate.predictions import compare_logits
    from res2net_validate.data.image_cache import preprocess_images
    from res2net_validate.graphs.artifacts import CalibrationSource
    from res2net_validate.data.preprocess import Preprocess
    from res2net_validate.data.selection import split_images

    preprocess = Preprocess()
    index = discover(embedded.dataset_dir)
    split = split_images(index.images, num_images=None, calib_count=None, calib_dir=None, calib_on_scored=False)
    scored = preprocess_images(split.scored, preprocess, cache, progress=False)
    calibration = CalibrationSource(preprocess_images(split.calibration, preprocess, cache, progress=False),
                                    preprocess, 32, f"{len(split.calibration)} held-out images")

    def logits(path: Path) -> np.ndarray:
        session = ort.InferenceSession(str(path), cpu_session_options(), providers=["CPUExecutionProvider"])
        return np.concatenate([session.run(["output"], {"input": x})[0] for x, _ in scored.batches(32, preprocess)])

    labels = scored.labels
    reference = logits(fp32)
    result = {"scored_images": int(len(labels)), "calibration_images": calibration.count,
              "fp32": {"top1": round(100 * float(np.mean(reference.argmax(1) == labels)), 2)}}
    candidates = {"fp16": fp16}
    for method in methods:
        for flavour in INT8_GRAPH_FLAVOURS:
            graph = int8_graph(cache, fp32, calibration.batches, calibration.key, calibration.count,
                               CalibrationSettings(method=method), flavour, progress=False)
            candidates[f"int8-{flavour}-{method}"] = graph.path
    sample = next(scored.batches(2, preprocess))[0]
    for name, path in candidates.items():
        out = logits(path)
        figures = compare_logits(reference, out)
        row = {"top1": round(100 * float(np.mean(out.argmax(1) == labels)), 2),
               "top1_agreement": round(figures["top1_agreement"], 2), "mean_cosine": round(figures["mean_cosine"], 5),
               "mean_kl": round(figures["mean_kl"], 5)}
        row["delta_top1_vs_fp32"] = round(row["top1"] - result["fp32"]["top1"], 2)
        if layers and name.startswith("int8"):
            row["worst_layers"] = [
                {"tensor": d.tensor, "op": d.producer, "cosine": round(d.cosine, 4), "rel_err": round(d.relative_error, 4)}
                for d in layer_comparison(fp32, path, sample, top=layers)
            ]
        result[name] = row
        print(name, json.dumps(row), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", default="default",
                        choices=("default", "speed", "kernel", "calib", "accuracy", "rss", "rss-child"))
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "res2net-bench-cache")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calib-images", type=int, default=16, help="images for the calibration-time section")
    parser.add_argument("--rss-sizes", default="100,300,1000")
    parser.add_argument("--method", default="entropy", choices=CALIBRATION_METHODS)
    parser.add_argument("--methods", default="entropy", help="calibration methods for the accuracy section")
    parser.add_argument("--layers", type=int, default=5, help="worst layers to list per INT8 graph")
    parser.add_argument("--graph", type=Path, help="(rss-child) FP32 graph")
    parser.add_argument("--images", type=int, help="(rss-child) images to calibrate")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    if args.section == "rss-child":
        rss_child(args.graph, args.images, args.method)
        return 0

    if args.section == "kernel":
        print_kernel_ceiling()
        return 0

    cache = ArtifactCache(args.cache_dir)
    weights, embedded, description = model_source(cache, args.weights)
    fp32 = fp32_graph(cache, weights)
    report = {"model": description, "cpu_threads": len(os.sched_getaffinity(0))}
    print(f"model: {description}\nfp32 graph: {fp32.path}", flush=True)

    if args.section == "rss":
        report["rss"] = bench_rss(fp32.path, [int(n) for n in args.rss_sizes.split(",")], args.method)
    if args.section in ("default", "speed"):
        # Speed does not depend on the ranges' quality: calibrate the graphs on generated images.
        key = f"bench-image-like-{args.calib_images}"
        graphs = {"fp32": fp32.path, "fp16": fp16_graph(cache, fp32).path}
        for flavour in INT8_GRAPH_FLAVOURS:
            graphs[f"int8-{flavour}"] = int8_graph(
                cache, fp32.path, lambda: image_like_batches(args.calib_images), key, args.calib_images,
                CalibrationSettings(), flavour, progress=False).path
        report["speed"] = {"batch": args.batch, "rounds": args.rounds, **bench_speed(graphs, args.batch, args.rounds)}
        print(json.dumps(report["speed"], indent=1), flush=True)
    if args.section in ("default", "speed"):
        report["kernel_ceiling"] = print_kernel_ceiling()
    if args.section in ("default", "calib"):
        report["calibration_time"] = bench_calibration_time(fp32.path, args.calib_images)
        print(json.dumps(report["calibration_time"], indent=1), flush=True)
    if args.section in ("default", "accuracy"):
        if embedded is None:
            print("accuracy: skipped (needs the embedded default: res2net_validate.embedded.default.ensure_embedded_default)")
        else:
            report["accuracy"] = bench_accuracy(cache, embedded, fp32.path, fp16_graph(cache, fp32).path,
                                                args.methods.split(","), args.layers)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
