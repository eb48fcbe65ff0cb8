"""preprocess_images: parallel build, the uint8 cache, batches."""

from __future__ import annotations

import os

import numpy as np
import pytest

from res2net_validate.cache import ArtifactCache
from res2net_validate.dataset import discover, write_sample_dataset
from res2net_validate.loader import preprocess_images
from res2net_validate.preprocess import Preprocess


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
