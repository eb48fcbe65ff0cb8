"""Preprocessing: bit-exact to torchvision's classic transform, and the fast path's deviation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms as T

from res2net_validate.data.preprocess import Preprocess, compare_methods
from res2net_validate.errors import BadImageError, ValidateError

# torchvision's reference transform is written with the ImageNet statistics themselves, not read from our code
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

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


def test_normalize_matches_torchvision():
    every_level = np.tile(np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16), (1, 3, 1, 1))
    noise = np.random.default_rng(0).integers(0, 256, (2, 3, 16, 16), dtype=np.uint8)
    batch = np.concatenate([every_level, noise])
    to_tensor, normalize = T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    reference = np.stack([normalize(to_tensor(np.ascontiguousarray(image.transpose(1, 2, 0)))).numpy()
                          for image in batch])
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


# -- odd and bad files: decoded as PIL.Image.open(path).convert("RGB") does -----------------------


def _pil_reference_uint8(path):
    with open(path, "rb") as f:
        image = Image.open(f).convert("RGB")
    return T.CenterCrop(224)(T.Resize(256)(image))


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    source = Image.open(_photo(folder / "source.JPEG", 300, 400, seed=7))
    source.convert("L").save(folder / "gray.JPEG", quality=90)
    source.convert("CMYK").save(folder / "cmyk.JPEG", quality=90)
    source.save(folder / "png_named.JPEG", format="PNG")
    source.convert("P").save(folder / "palette.png")
    exif = source.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    source.save(folder / "exif_rotated.JPEG", exif=exif, quality=90)
    source.save(folder / "plain.JPEG", quality=90)  # the same pixels without the orientation tag
    data = (folder / "source.JPEG").read_bytes()
    (folder / "truncated.JPEG").write_bytes(data[: len(data) // 2])
    (folder / "corrupt.JPEG").write_bytes(b"\xff\xd8\xff\xe0" + b"x" * 500)
    (folder / "empty.JPEG").write_bytes(b"")
    return folder


@pytest.mark.parametrize("name", ["gray.JPEG", "cmyk.JPEG", "png_named.JPEG", "palette.png", "exif_rotated.JPEG"])
def test_odd_files_decode_like_pil(odd_files, name):
    path = odd_files / name
    ours = Preprocess().load_uint8(path)
    assert ours.shape == (3, 224, 224)
    np.testing.assert_array_equal(ours, np.asarray(_pil_reference_uint8(path)).transpose(2, 0, 1))


def test_exif_orientation_is_not_applied(odd_files):
    # The reference (PIL open + convert, torchvision's classic path) ignores EXIF orientation.
    np.testing.assert_array_equal(
        Preprocess().load_uint8(odd_files / "exif_rotated.JPEG"), Preprocess().load_uint8(odd_files / "plain.JPEG")
    )
    with Image.open(odd_files / "exif_rotated.JPEG") as image:
        assert image.getexif()[0x0112] == 6  # the tag is really there


@pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities of TorchVision")
@pytest.mark.parametrize("method", ["exact", "fast"])
@pytest.mark.parametrize("name", ["truncated.JPEG", "corrupt.JPEG", "empty.JPEG", "missing.JPEG"])
def test_bad_files_name_the_file(odd_files, method, name):
    with pytest.raises(BadImageError, match=f"cannot decode image .*{name}") as caught:
        Preprocess(method=method).load_uint8(odd_files / name)
    assert isinstance(caught.value, ValidateError) and caught.value.path == odd_files / name


# -- the fast path ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities of TorchVision")
def test_fast_path_within_two_lsb(tmp_path, odd_files):
    paths = [_photo(tmp_path / f"{h}x{w}.JPEG", h, w, seed=h + w) for h, w in SIZES[:5]]
    paths += [odd_files / name for name in ("gray.JPEG", "cmyk.JPEG", "png_named.JPEG", "exif_rotated.JPEG")]
    diff = compare_methods(paths)
    assert diff.images == len(paths)
    assert diff.max_abs_lsb <= 2, diff.describe()
    assert diff.mean_abs_lsb < 0.05
    assert "LSB" in diff.describe()
    # the measurement is real: a different transform is far off
    far = compare_methods(paths[:1], Preprocess(interpolation="nearest"))
    assert far.images == 1


@pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities of TorchVision")
def test_fast_path_geometry_matches(tmp_path):
    for height, width in SIZES:
        path = _photo(tmp_path / "x.JPEG", height, width)
        fast, exact = Preprocess(method="fast").load_uint8(path), Preprocess().load_uint8(path)
        assert fast.shape == exact.shape == (3, 224, 224)
        assert np.abs(fast.astype(int) - exact.astype(int)).max() <= 2


def test_normalize_torch_fallback_is_identical(monkeypatch):
    from res2net_validate.data import preprocess as module

    batch = np.random.default_rng(1).integers(0, 256, (2, 3, 8, 8), dtype=np.uint8)
    fast = Preprocess(mean=(0.3, 0.2, 0.1), std=(0.7, 0.6, 0.5)).normalize(batch)
    monkeypatch.setattr(module, "_numpy_matches_torch", lambda mean, std: False)
    np.testing.assert_array_equal(Preprocess(mean=(0.3, 0.2, 0.1), std=(0.7, 0.6, 0.5)).normalize(batch), fast)
    to_tensor, normalize = T.ToTensor(), T.Normalize((0.3, 0.2, 0.1), (0.7, 0.6, 0.5))
    np.testing.assert_array_equal(fast[0], normalize(to_tensor(np.ascontiguousarray(batch[0].transpose(1, 2, 0)))).numpy())
