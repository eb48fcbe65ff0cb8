"""preprocess_images: parallel build, the uint8 cache, batches."""

from __future__ import annotations

import os

import numpy as np
import pytest

from res2net_validate.data import image_cache
from res2net_validate.cache import ArtifactCache
from res2net_validate.data.layouts import discover
from res2net_validate.errors import ValidateError
from res2net_validate.data.image_cache import preprocess_images
from res2net_validate.data.preprocess import Preprocess
from res2net_validate.data.sample import write_sample_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    write_sample_dataset(root, 20, layout="card", size=(120, 160))
    return discover(root)


def test_build_then_hit(dataset, tmp_path, capsys):
    cache, preprocess = ArtifactCache(tmp_path / "cache"), Preprocess()
    first = preprocess_images(dataset.images, preprocess, cache, workers=2, progress=True)
    assert first.built and first.cache_path is not None and first.cache_path.is_dir()
    assert first.images.shape == (20, 3, 224, 224) and first.images.dtype == np.uint8
    assert "img/s" in capsys.readouterr().err  # tqdm progress with the rate
    for i, image in enumerate(dataset.images):
        np.testing.assert_array_equal(first.images[i], preprocess.load_uint8(image.path))
    np.testing.assert_array_equal(first.labels, [image.label for image in dataset.images])
    assert first.names == tuple(image.name for image in dataset.images)

    second = preprocess_images(dataset.images, preprocess, cache, progress=False)
    assert not second.built and second.cache_path == first.cache_path
    assert isinstance(second.images, np.memmap) and not second.images.flags.writeable
    np.testing.assert_array_equal(second.images, first.images)
    assert not list(first.cache_path.parent.glob("*.partial"))


def test_key_follows_images_and_transform(dataset, tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    base = preprocess_images(dataset.images, Preprocess(), cache, progress=False)
    subset = preprocess_images(dataset.images[:5], Preprocess(), cache, progress=False)
    other = preprocess_images(dataset.images, Preprocess(image_size=192, crop_pct=0.9), cache, progress=False)
    assert subset.built and other.built and other.images.shape[2:] == (192, 192)
    assert len({base.cache_path, subset.cache_path, other.cache_path}) == 3
    # mean/std are applied per batch: the uint8 cache is shared
    shared = preprocess_images(dataset.images, Preprocess(mean=(0.5, 0.5, 0.5)), cache, progress=False)
    assert not shared.built and shared.cache_path == base.cache_path

    touched = dataset.images[3].path
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert preprocess_images(dataset.images, Preprocess(), cache, progress=False).built


def test_batches(dataset):
    preprocess = Preprocess()
    loaded = preprocess_images(dataset.images, preprocess, cache=None, workers=1, progress=False)
    assert loaded.cache_path is None and loaded.built
    batches = list(loaded.batches(8, preprocess))
    assert [len(labels) for _, labels in batches] == [8, 8, 4]
    images = np.concatenate([b for b, _ in batches])
    assert images.dtype == np.float32 and images.shape == (20, 3, 224, 224)
    np.testing.assert_array_equal(images, preprocess.normalize(loaded.images))
    np.testing.assert_array_equal(np.concatenate([l for _, l in batches]), loaded.labels)


def test_worker_processes_match_inline(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(image_cache, "MIN_IMAGES_FOR_POOL", 0)  # use the pool even for 20 images
    monkeypatch.setattr(image_cache, "CHUNK_SIZE", 3)
    pooled = preprocess_images(dataset.images, Preprocess(), ArtifactCache(tmp_path / "a"), workers=2, progress=False)
    inline = preprocess_images(dataset.images, Preprocess(), ArtifactCache(tmp_path / "b"), workers=1, progress=False)
    np.testing.assert_array_equal(pooled.images, inline.images)
    np.testing.assert_array_equal(pooled.labels, inline.labels)


@pytest.fixture
def with_bad_images(tmp_path):
    root = tmp_path / "val"
    write_sample_dataset(root, 8, layout="card-flat", size=(60, 80))
    index = discover(root)
    truncated, corrupt = index.images[2].path, index.images[5].path
    truncated.write_bytes(truncated.read_bytes()[:300])
    corrupt.write_bytes(b"definitely not a JPEG")
    return discover(root), {truncated.name, corrupt.name}


@pytest.mark.parametrize("workers,pool", [(1, False), (2, True)])
def test_bad_image_is_an_error_and_nothing_is_cached(with_bad_images, tmp_path, monkeypatch, workers, pool):
    if pool:
        monkeypatch.setattr(image_cache, "MIN_IMAGES_FOR_POOL", 0)
        monkeypatch.setattr(image_cache, "CHUNK_SIZE", 2)
    index, bad = with_bad_images
    cache = ArtifactCache(tmp_path / "cache")
    with pytest.raises(ValidateError, match="cannot decode image .*ILSVRC2012_val_0000000[36].JPEG.*skip"):
        preprocess_images(index.images, Preprocess(), cache, workers=workers, progress=False)
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == []


def test_skip_bad_counts_skipped_images(with_bad_images, tmp_path):
    index, bad = with_bad_images
    cache = ArtifactCache(tmp_path / "cache")
    loaded = preprocess_images(index.images, Preprocess(), cache, progress=False, skip_bad=True)
    assert set(loaded.skipped) == bad and len(loaded) == 6 and loaded.total_images == 8
    assert not set(loaded.names) & bad and loaded.images.shape[0] == 6
    good = [image for image in index.images if image.name not in bad]
    np.testing.assert_array_equal(loaded.labels, [image.label for image in good])
    np.testing.assert_array_equal(loaded.images[0], Preprocess().load_uint8(good[0].path))
    np.testing.assert_array_equal(loaded.images[-1], Preprocess().load_uint8(good[-1].path))

    again = preprocess_images(index.images, Preprocess(), cache, progress=False, skip_bad=True)
    assert not again.built and again.skipped == loaded.skipped
    # the cached entry remembers its bad files: without skip_bad they are still an error
    with pytest.raises(ValidateError, match="cannot decode image .*2 undecodable"):
        preprocess_images(index.images, Preprocess(), cache, progress=False)
    in_memory = preprocess_images(index.images, Preprocess(), None, progress=False, skip_bad=True)
    assert in_memory.skipped == loaded.skipped and in_memory.cache_path is None
    np.testing.assert_array_equal(in_memory.images, loaded.images)


def test_empty_list(tmp_path):
    empty = preprocess_images([], Preprocess(), ArtifactCache(tmp_path), progress=False)
    assert len(empty) == 0 and list(empty.batches(4, Preprocess())) == []


def test_batches_prefetch_in_order_and_early_stop(dataset):
    preprocess = Preprocess()
    loaded = preprocess_images(dataset.images, preprocess, cache=None, workers=1, progress=False)
    serial = list(loaded.batches(3, preprocess, prefetch=1))
    threaded = list(loaded.batches(3, preprocess, prefetch=3))
    assert len(serial) == len(threaded) == 7
    for (a, la), (b, lb) in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    first_two = []
    for batch, labels in loaded.batches(3, preprocess, prefetch=3):  # consumer stops early (calibration)
        first_two.append(labels)
        if len(first_two) == 2:
            break
    np.testing.assert_array_equal(np.concatenate(first_two), loaded.labels[:6])


def _resident_kib(path) -> int:
    """KiB of ``path``'s memory maps resident in this process (Linux /proc/self/smaps)."""
    resident, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line: address range, ..., path
                inside = len(fields) >= 6 and fields[5] == str(path)
            elif inside and fields[0] == "Rss:":
                resident += int(fields[1])
    return resident


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="reads /proc/self/smaps (Linux)")
@pytest.mark.parametrize("prefetch", [1, 3])
def test_a_pass_over_the_cache_keeps_one_block_resident_not_the_file(tmp_path, prefetch):
    """The calibration key and the batches read every image through the memory map; pages they are done
    with are unmapped, so resident memory stays about a block whatever the image count (the file alone
    is 38.5 MB here; without the release it would all stay resident)."""
    from res2net_validate.graphs.artifacts import CalibrationSource

    path = tmp_path / "images.npy"
    count = 256
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, 3, 224, 224))
    array[:] = np.random.default_rng(0).integers(0, 256, size=(3, 224, 224), dtype=np.uint8)
    array.flush()
    del array
    images = image_cache.PreprocessedImages(np.load(path, mmap_mode="r"), np.zeros(count, np.int64),
                                            tuple(f"{i}.JPEG" for i in range(count)), None, False)
    preprocess = Preprocess()
    block_kib = image_cache.CHECKSUM_ROWS * 3 * 224 * 224 // 1024
    source = CalibrationSource(images, preprocess, 32, "test")
    assert source.key and _resident_kib(path) <= block_kib + 8  # the map's header page and rounding
    batches = 0
    for batch, _labels in images.batches(32, preprocess, prefetch=prefetch):
        batches += 1
        # a checked block plus the batches in flight: at most 2 of the file's 4 blocks
        assert batch.dtype == np.float32 and _resident_kib(path) <= 2 * block_kib + 8
    assert batches == count // 32


def test_releasing_pages_leaves_arrays_that_are_not_read_only_maps_alone(tmp_path):
    in_memory = np.arange(4096 * 4, dtype=np.uint8)
    image_cache.release_pages(in_memory[4096:])  # anonymous memory: unmapping it would zero it
    np.testing.assert_array_equal(in_memory, np.arange(4096 * 4, dtype=np.uint8))
    path = tmp_path / "c.npy"
    np.save(path, np.arange(4096 * 4, dtype=np.uint8))
    private = np.load(path, mmap_mode="c")  # copy-on-write: its pages hold changes the file has not
    private[:] = 7
    image_cache.release_pages(private)
    assert (private == 7).all()
