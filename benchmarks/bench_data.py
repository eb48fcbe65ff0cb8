"""Data-stage throughput: exact and fast preprocessing per core, parallel build, cache reads.

    python benchmarks/bench_data.py [--images 200] [--size 375x500] [--workers N] [--dir DIR]

Generates ImageNet-sized JPEGs (default 200 at 500x375, about the ImageNet val average) in a
temporary folder unless --dir names an existing dataset, then prints:

* exact-path img/s on one core (PIL decode + resize + crop; target >= 300),
* fast-path img/s on one core (decode_jpeg + tensor resize; target >= 500),
* for each path, decode alone and resize alone on one core: the ceiling those library calls set,
* the parallel build with ``workers`` threads (what ``preprocess_images`` does on a cache miss),
* cache read img/s (uint8 from the memory-mapped cache; target >= 10,000) and normalised batches,
* an estimate of a 50,000-image accuracy run's data stage on a 16-core box, cold and cached.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from res2net_validate.cache import ArtifactCache  # noqa: E402
from res2net_validate.data.layouts import discover  # noqa: E402
from res2net_validate.data.sample import write_sample_dataset  # noqa: E402
from res2net_validate.data.image_cache import default_workers, preprocess_images  # noqa: E402
from res2net_validate.data.preprocess import Preprocess, compare_methods  # noqa: E402

FULL_VAL = 50_000


def per_image_rate(preprocess: Preprocess, paths, repeats: int = 1) -> float:
    """Single-threaded img/s of load_uint8 (best of ``repeats`` passes)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core, also for the fast path's torch kernels
    try:
        best = 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            for path in paths:
                preprocess.load_uint8(path)
            best = max(best, len(paths) / (time.perf_counter() - start))
        return best
    finally:
        torch.set_num_threads(threads)


def stage_rates(paths, method: str) -> tuple[float, float]:
    """Single-core img/s of decoding alone and of resizing alone (decoded images held in memory),
    with the library calls each path makes: what bounds that path on this CPU, whatever the code
    around them does."""
    import io

    import torch
    from PIL import Image

    from res2net_validate.data.preprocess import _PIL_FILTERS, resized_size

    paths = paths[:200]  # decoded images stay in memory
    blobs = [Path(p).read_bytes() for p in paths]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if method == "exact":
            def decode(blob):
                image = Image.open(io.BytesIO(blob))
                image.load()
                return image if image.mode == "RGB" else image.convert("RGB")

            def resize(image):
                height, width = resized_size(image.height, image.width, 256)
                return image.resize((width, height), _PIL_FILTERS["bilinear"])
        else:
            from torchvision.io import ImageReadMode, decode_jpeg
            from torchvision.transforms.v2 import functional as F

            def decode(blob):
                return decode_jpeg(torch.frombuffer(bytearray(blob), dtype=torch.uint8), mode=ImageReadMode.RGB)

            def resize(tensor):
                return F.resize(tensor, list(resized_size(tensor.shape[1], tensor.shape[2], 256)), antialias=True)

        decoded = [decode(blob) for blob in blobs]  # also the warm-up
        resize(decoded[0])
        rates = []
        for stage, inputs in ((decode, blobs), (resize, decoded)):
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                for item in inputs:
                    stage(item)
                best = min(best, time.perf_counter() - start)
            rates.append(len(inputs) / best)
        return rates[0], rates[1]
    finally:
        torch.set_num_threads(threads)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", default="375x500", help="HEIGHTxWIDTH of the generated JPEGs")
    parser.add_argument("--workers", type=int, default=None, help="threads for the parallel build (default: all cores)")
    parser.add_argument("--dir", type=Path, default=None, help="use this dataset instead of generated JPEGs")
    parser.add_argument("--repeats", type=int, default=2, help="passes per single-core measurement (best is kept)")
    args = parser.parse_args(argv)
    workers = args.workers or default_workers()

    with tempfile.TemporaryDirectory(prefix="bench_data_") as scratch:
        scratch = Path(scratch)
        if args.dir is None:
            height, width = (int(v) for v in args.size.lower().split("x"))
            start = time.perf_counter()
            write_sample_dataset(scratch / "val", args.images, layout="card", size=(height, width))
            print(f"generated {args.images} JPEGs of {width}x{height} in {time.perf_counter() - start:.1f} s")
            root = scratch / "val"
        else:
            root = args.dir
        index = discover(root)
        images = index.images[: args.images]
        paths = [image.path for image in images]
        mean_kb = np.mean([p.stat().st_size for p in paths]) / 1024
        print(f"dataset: {index.describe()}; using {len(images)} images, mean file {mean_kb:.0f} kB")

        exact, fast = Preprocess(), Preprocess(method="fast")
        for warm in (exact, fast):  # imports, tables, first-call costs
            warm.load_uint8(paths[0])
        exact_rate = per_image_rate(exact, paths, args.repeats)
        fast_rate = per_image_rate(fast, paths, args.repeats)
        print(f"exact path, 1 core:  {exact_rate:8.0f} img/s   (target >= 300)")
        print(f"fast path, 1 core:   {fast_rate:8.0f} img/s   (target >= 500)")
        for name, target in (("exact", 300), ("fast", 500)):
            decode_rate, resize_rate = stage_rates(paths, name)
            ceiling = 1 / (1 / decode_rate + 1 / resize_rate)
            print(f"  {name} path stages, 1 core: decode {decode_rate:.0f} img/s, resize {resize_rate:.0f} img/s "
                  f"-> at most {ceiling:.0f} img/s for decode + resize alone (target {target})")
        print(compare_methods(paths[:50]).describe())

        cache = ArtifactCache(scratch / "cache")
        rates = {}
        for name, preprocess in (("exact", exact), ("fast", fast)):
            result = preprocess_images(images, preprocess, cache, workers=workers, progress=False)
            timing = result.build_timing
            rates[name] = timing["steady_img_per_s"]
            single = exact_rate if name == "exact" else fast_rate
            print(f"{name} build, {workers} worker processes: {len(images) / timing['seconds']:5.0f} img/s overall, "
                  f"{rates[name]:5.0f} img/s after {timing['startup_seconds']:.1f} s start-up "
                  f"({rates[name] / single:.2f}x one core; includes writing the cache)")

        # Cache reads: open the memory-mapped entry and touch every byte (as a backend does).
        reads, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.0:
            hit = preprocess_images(images, exact, cache, progress=False)
            for first in range(0, len(hit), 64):
                np.ascontiguousarray(hit.images[first : first + 64])
            reads += len(hit)
        read_rate = reads / (time.perf_counter() - start)
        assert not hit.built
        print(f"cache read (uint8):  {read_rate:8.0f} img/s   (target >= 10,000; page-cache warm)")
        normalised, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.0:
            for batch, _ in hit.batches(64, exact):
                normalised += len(batch)
        norm_rate = normalised / (time.perf_counter() - start)
        print(f"cache read + normalise to float32 (batches of 64, {min(4, default_workers())} threads): "
              f"{norm_rate:6.0f} img/s")

    cores = 16
    cold = FULL_VAL / (exact_rate * cores * 0.85)  # 85%: thread scaling measured here is about that or better
    cold_fast = FULL_VAL / (fast_rate * cores * 0.85)
    print(
        f"\nestimate, 50,000 images on a {cores}-core box (per-core rates above, 85% scaling):\n"
        f"  cold, exact: {cold:5.0f} s of preprocessing (+ 7.5 GB cache written)\n"
        f"  cold, fast:  {cold_fast:5.0f} s\n"
        f"  cached: {FULL_VAL / read_rate:5.1f} s to read the uint8 cache, "
        f"{FULL_VAL / norm_rate:5.1f} s to normalise at this machine's rate (overlaps inference; "
        f"scales with threads, up to 4)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
