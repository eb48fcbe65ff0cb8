"""Preprocessing: bit-exact to torchvision's classic transform, and the fast path's deviation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from res2net_validate.errors import ValidateError
from res2net_validate.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

# (height, width): landscape, portrait, square, near-square, extreme, smaller than the crop
SIZES = [(375, 500), (500, 333), (256, 256), (300, 257), (1000, 180), (150, 120), (37, 900)]


def _photo(path, height, width, seed=0, mode="RGB", fmt=None):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    field += rng.integers(-20, 21, field.shape, dtype=np.int16)
    Image.fromarray(field.clip(0, 255).astype(np.uint8)).convert(mode).save(path, format=fmt, quality=92)
    return path


def _torchvision_reference(path, image_size=224, crop_pct=0.875, interpolation=T.InterpolationMode.BILINEAR):
    resize = int(image_size / crop_pct)
    transform = T.Compose([
        T.Resize(resize, interpolation=interpolation),
        T.CenterCrop(image_size),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    with open(path, "rb") as f:
        image = Image.open(f).convert("RGB")  # torchvision's ImageFolder loader
    return transform(image).numpy()


@pytest.mark.parametrize("height,width", SIZES)
def test_bit_exact_to_torchvision(tmp_path, height, width):
    path = _photo(tmp_path / "x.JPEG", height, width, seed=height * width)
    preprocess = Preprocess()
    ours = preprocess.normalize(preprocess.load_uint8(path)[None])[0]
    np.testing.assert_array_equal(ours, _torchvision_reference(path))


@pytest.mark.parametrize("image_size,crop_pct,interpolation", [
    (288, 1.0, "bilinear"), (256, 0.95, "bicubic"), (160, 0.875, "bilinear"), (224, 1.2, "bilinear"),
])
def test_other_sizes_follow_crop_pct(tmp_path, image_size, crop_pct, interpolation):
    path = _photo(tmp_path / "x.JPEG", 375, 500)
    preprocess = Preprocess(image_size=image_size, crop_pct=crop_pct, interpolation=interpolation)
    assert preprocess.resize_size == int(image_size / crop_pct)
    ours = preprocess.normalize(preprocess.load_uint8(path)[None])[0]
    mode = T.InterpolationMode(interpolation)
    np.testing.assert_array_equal(ours, _torchvision_reference(path, image_size, crop_pct, mode))


def test_defaults_match_the_card():
    preprocess = Preprocess()
    assert (preprocess.image_size, preprocess.resize_size) == (224, 256)
    assert preprocess.channel_order == "RGB" and preprocess.method == "exact"
    assert (preprocess.mean, preprocess.std) == (IMAGENET_MEAN, IMAGENET_STD)


def test_bgr_swaps_channels(tmp_path):
    path = _photo(tmp_path / "x.JPEG", 300, 400)
    rgb, bgr = Preprocess(), Preprocess(channel_order="BGR")
    np.testing.assert_array_equal(bgr.load_uint8(path), rgb.load_uint8(path)[::-1])
    # mean/std follow the channels, so a BGR model sees the same normalised values per colour
    np.testing.assert_array_equal(
        bgr.normalize(bgr.load_uint8(path)[None])[0], rgb.normalize(rgb.load_uint8(path)[None])[0][::-1]
    )
    assert rgb.pixel_key_parts() != bgr.pixel_key_parts()


def test_normalize_table_matches_torch():
    every_level = np.tile(np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16), (1, 3, 1, 1))
    noise = np.random.default_rng(0).integers(0, 256, (2, 3, 16, 16), dtype=np.uint8)
    batch = np.concatenate([every_level, noise])
    reference = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)(torch.from_numpy(batch).float().div(255)).numpy()
    np.testing.assert_array_equal(Preprocess().normalize(batch), reference)


def test_key_parts():
    base = Preprocess()
    assert base.key_parts() == Preprocess().key_parts()
    assert {"pillow", "res2net_validate", "image_size", "resize_size", "method"} <= set(base.key_parts())
    for changed in (Preprocess(image_size=256), Preprocess(crop_pct=0.9), Preprocess(interpolation="bicubic"),
                    Preprocess(method="fast"), Preprocess(channel_order="BGR")):
        assert changed.pixel_key_parts() != base.pixel_key_parts()
    # normalisation does not change the cached uint8 pixels, but does change the model input
    other_mean = Preprocess(mean=(0.5, 0.5, 0.5))
    assert other_mean.pixel_key_parts() == base.pixel_key_parts()
    assert other_mean.key_parts() != base.key_parts()


@pytest.mark.parametrize("kwargs,option", [
    ({"image_size": 0}, "image_size"), ({"crop_pct": 0}, "crop_pct"), ({"interpolation": "cubic"}, "interpolation"),
    ({"channel_order": "GBR"}, "channel_order"), ({"method": "turbo"}, "method"), ({"std": (1, 0, 1)}, "std"),
    ({"method": "fast", "interpolation": "lanczos"}, "fast"),
])
def test_invalid_settings(kwargs, option):
    with pytest.raises(ValidateError, match=option):
        Preprocess(**kwargs)
