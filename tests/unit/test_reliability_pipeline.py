"""The pipeline under real faults: concurrent INT8 builds in separate processes, a read-only FP32
entry, a corrupted image cache, a full disk while preprocessing, a SIGKILLed parent of decode workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from reliability_tools import REPO, alive, children_of, finish, python, read_only_view, tmpfs, wait_for

from res2net_validate.cache import ArtifactCache
from res2net_validate.graphs.calibrate import CalibrationSettings
from res2net_validate.data.layouts import discover
from res2net_validate.errors import ValidateError
from res2net_validate.data.image_cache import IMAGES_FILE, preprocess_images
from res2net_validate.data.preprocess import Preprocess
from res2net_validate.graphs.quantize import int8_graph
from res2net_validate.data.sample import write_sample_dataset

INT8_BUILDS = """
import sys
import numpy as np
from res2net_validate.cache import ArtifactCache
from res2net_validate.graphs.calibrate import CalibrationSettings
from res2net_validate.graphs.quantize import int8_graph

cache, graph, flavour = ArtifactCache(sys.argv[1]), sys.argv[2], sys.argv[3]
data = np.random.default_rng(0).standard_normal((8, 3, 32, 32), dtype=np.float32)
for round in range(6):  # several builds each: the two processes overlap many times
    int8_graph(cache, graph, lambda: [data], f"calibration-{round}", 8, CalibrationSettings("minmax"), flavour,
               progress=False)
print("done", flush=True)
"""


@pytest.fixture(scope="module")
def fp32_entry(tmp_path_factory):
    """A tiny Res2Net-like FP32 graph in a folder of its own, as the cache's onnx-fp32 entry is."""
    from test_quantize import export_tiny

    folder = tmp_path_factory.mktemp("onnx-fp32") / "entry"
    folder.mkdir()
    return export_tiny(folder / "model.onnx", size=32)


def test_two_int8_flavours_built_at_once_from_one_fp32_graph(fp32_entry, tmp_path):
    before = {p.name: p.read_bytes() for p in fp32_entry.parent.iterdir()}
    builders = [python(INT8_BUILDS, str(tmp_path / "cache"), str(fp32_entry), flavour)
                for flavour in ("onnxruntime", "tensorrt")]
    results = [finish(builder, timeout=120) for builder in builders]
    for code, out, err in results:
        assert code == 0 and out.strip() == "done", err
    assert {p.name: p.read_bytes() for p in fp32_entry.parent.iterdir()} == before  # nothing written beside it
    assert len(list((tmp_path / "cache" / "int8").glob("*.onnx"))) == 12


def test_an_int8_build_writes_nothing_into_the_fp32_entry(fp32_entry, tmp_path):
    """Deterministic twin of the race above: the FP32 entry is read-only, as another entry must be."""
    data = np.random.default_rng(0).standard_normal((8, 3, 32, 32), dtype=np.float32)
    with read_only_view(fp32_entry.parent, tmp_path / "ro") as view:
        graph = int8_graph(ArtifactCache(tmp_path / "cache"), view / fp32_entry.name, lambda: [data], "k", 8,
                           CalibrationSettings("minmax"), "onnxruntime", progress=False)
    assert graph.built and graph.unquantized_weights == ()


def test_an_int8_graph_corrupted_in_place_is_rebuilt_not_scored(fp32_entry, tmp_path):
    """Bit rot (or a copy that keeps timestamps) in a cached INT8 graph: same size, same mtime."""
    data = np.random.default_rng(0).standard_normal((8, 3, 32, 32), dtype=np.float32)

    def build():
        return int8_graph(ArtifactCache(tmp_path), fp32_entry, lambda: [data], "k", 8, CalibrationSettings("minmax"),
                          "onnxruntime", progress=False)

    graph = build()
    genuine = graph.path.read_bytes()
    stat = graph.path.stat()
    with open(graph.path, "r+b") as f:  # one byte in the middle: a weight, most likely
        f.seek(len(genuine) // 2)
        f.write(bytes([genuine[len(genuine) // 2] ^ 0x01]))
    os.utime(graph.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.warns(UserWarning, match=r"cached int8 artifact .* does not match its manifest \(bytes changed\)"):
        again = build()
    assert again.built and again.path.read_bytes() == genuine


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    write_sample_dataset(root, 70, layout="card", size=(64, 80))
    return discover(root).images


@pytest.fixture(scope="module")
def photo_root(photos):
    return photos[0].path.parents[1]


def test_an_image_cache_corrupted_in_place_is_caught_as_it_is_read_and_rebuilt_next_time(photos, tmp_path):
    cache, preprocess = ArtifactCache(tmp_path), Preprocess()
    original = np.array(preprocess_images(photos, preprocess, cache, workers=1, progress=False).images)
    hit = preprocess_images(photos, preprocess, cache, workers=1, progress=False)
    array_file = hit.cache_path / IMAGES_FILE
    stat = array_file.stat()
    with open(array_file, "r+b") as f:  # flip one pixel of image 66, keep size and mtime
        f.seek(stat.st_size - 10)
        byte = f.read(1)
        f.seek(stat.st_size - 10)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(array_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    corrupted = preprocess_images(photos, preprocess, cache, workers=1, progress=False)
    assert not corrupted.built  # the cheap check cannot see it; the reader does
    with pytest.raises(ValidateError) as error:
        for _ in corrupted.batches(16, preprocess, prefetch=1):
            pass
    assert f"preprocessed-image cache {array_file} is corrupted: images 64-69" in str(error.value)
    assert "it was removed; rerun to rebuild it" in str(error.value)

    rebuilt = preprocess_images(photos, preprocess, cache, workers=1, progress=False)
    assert rebuilt.built
    np.testing.assert_array_equal(np.array(rebuilt.images), original)


PREPROCESS_ON_TMPFS = """
import sys
from pathlib import Path
from res2net_validate.cache import ArtifactCache
from res2net_validate.data.layouts import discover
from res2net_validate.errors import ValidateError
from res2net_validate.data.image_cache import preprocess_images
from res2net_validate.data.preprocess import Preprocess

images = discover(sys.argv[1]).images
if sys.argv[3] == "unchecked":  # as if the space went to another process after the check
    import res2net_validate.cache, res2net_validate.data.image_cache
    res2net_validate.cache.check_free_space = res2net_validate.data.image_cache.check_free_space = lambda *args: None
cache = None if sys.argv[3] == "scratch" else ArtifactCache(sys.argv[2])
try:
    preprocess_images(images, Preprocess(), cache, workers=1, progress=False)
except ValidateError as exc:
    print(exc)
"""


@pytest.mark.parametrize("where", ["cache", "scratch", "unchecked"])
def test_preprocessing_onto_a_full_disk_is_one_clear_error_not_a_sigbus(photo_root, tmp_path, where):
    # 70 images need 10.0 MB (MiB); the disk has 6.  Without a cache the scratch copy goes to $TMPDIR.
    with tmpfs(tmp_path / "small", "6m") as small:
        process = python(PREPROCESS_ON_TMPFS, str(photo_root), str(small), where,
                         extra_env={"TMPDIR": str(small)})
        code, out, err = finish(process, timeout=120)
        assert code == 0, f"exit {code} ({'SIGBUS' if code == -signal.SIGBUS else err})"
        expected = "cannot allocate 10.0 MB for" if where == "unchecked" else "MB free, 10.0 MB needed"
        assert expected in out, out + err
        assert str(small) in out
        leftovers = [p for p in small.rglob("*") if p.is_file() and not p.name.endswith((".lock", ".owner"))]
        assert leftovers == []


DECODE_WITH_WORKERS = """
import sys
from reliability_tools import SlowPreprocess
from res2net_validate.data.layouts import discover
from res2net_validate.data.image_cache import preprocess_images

preprocess_images(discover(sys.argv[1]).images, SlowPreprocess(), None, workers=2, progress=False)
"""


def _decode_workers(pid):
    workers = []
    for child in children_of(pid):
        try:
            if b"spawn_main" in open(f"/proc/{child}/cmdline", "rb").read():
                workers.append(child)
        except OSError:
            pass
    return workers


def test_decode_workers_end_with_their_sigkilled_parent(photo_root):
    # No pipes: workers that outlive their parent would hold them open, and reading them would hang.
    parent = python(DECODE_WITH_WORKERS, str(photo_root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        wait_for(lambda: len(_decode_workers(parent.pid)) == 2, timeout=60, what="two decode workers")
        workers = _decode_workers(parent.pid)
        time.sleep(1.5)  # let them start on their chunks
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in workers), timeout=8,
                 what=f"the workers {workers} of the killed parent to end")
    finally:
        parent.kill()
        for pid in workers:  # orphans now: their parent pid is no longer ours to search by
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_replaced_image_array_is_the_users_own_data_and_not_checked(photos, tmp_path):
    import dataclasses

    real = preprocess_images(photos, Preprocess(), ArtifactCache(tmp_path), workers=1, progress=False)
    zeros = dataclasses.replace(real, images=np.zeros_like(np.asarray(real.images)))
    assert sum(len(labels) for _, labels in zeros.batches(32, Preprocess(), prefetch=1)) == len(photos)
    assert real.cache_path.is_dir()  # not discarded as corrupt


UNGUARDED_SCRIPT = """
import sys
from res2net_validate.cache import ArtifactCache
from res2net_validate.data.layouts import discover
from res2net_validate.data.preprocess import Preprocess
from res2net_validate.data.image_cache import preprocess_images

# No `if __name__ == "__main__":` here: every spawned decode worker runs this again on start-up.
images = discover(sys.argv[1]).images
result = preprocess_images(images, Preprocess(), ArtifactCache(sys.argv[2]), workers=2, progress=False)
print("decoded", len(result.images), flush=True)
"""


def test_a_script_without_a_main_guard_is_told_so_instead_of_waiting_on_its_own_lock(tmp_path):
    # Each spawned worker re-runs the script's top level and asks for the images entry its parent is
    # building; it used to wait for that lock forever ("held by pid <the parent>").
    write_sample_dataset(tmp_path / "val", 70, layout="card", size=(64, 80))
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "val"), str(tmp_path / "cache")],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "decoded 70" in done.stdout  # the parent finishes the work in its own process
    assert 'if __name__ == "__main__":' in done.stderr
    assert "while its parent holds it" in done.stderr
