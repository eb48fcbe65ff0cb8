"""Evaluation preprocessing, bit-exact to torchvision's classic ImageNet transform.

The reference is what the card (and timm's validation script) runs on PIL images::

    Resize(resize_size, bilinear)  ->  CenterCrop(image_size)  ->  ToTensor  ->  Normalize(mean, std)

with ``resize_size = floor(image_size / crop_pct)`` (256 for 224 at crop 0.875).  The defaults -- input
size, crop fraction, interpolation, mean, std -- are the model's own published data config, read from
timm's pretrained config for ``res2net50_14w_8s`` (:func:`model_data_config`), not copied by hand.
It is split in two stages so that the expensive part can be cached once and shared by every precision and backend:

* :meth:`Preprocess.load_uint8` -- decode, resize, crop: a ``(3, S, S)`` uint8 CHW array;
* :meth:`Preprocess.normalize` -- ``/255``, ``-mean``, ``/std`` on a uint8 NCHW batch, float32,
  the same float32 operations in torchvision's order, so it is bit-exact too.

Decoding follows ``PIL.Image.open(path).convert("RGB")``, which is also what torchvision's
ImageFolder loader does: grayscale, palette and CMYK files are converted by PIL, the content (not
the extension) decides the format (a PNG named ``.JPEG`` decodes fine), and EXIF orientation is
**not** applied -- neither PIL's ``open``/``convert`` nor torchvision's classic path rotates, and
the ImageNet labels were made on the stored pixels.

``method="fast"`` decodes JPEGs with ``torchvision.io.decode_jpeg`` (libjpeg-turbo) and resizes the
uint8 tensor with torchvision's antialiased kernel.  It is not bit-exact; :func:`compare_methods`
measures how far it is (1 LSB at most on the synthetic photos of the tests).  Files that are not
plain YCbCr/grayscale JPEGs (PNG, CMYK, ...) are decoded by PIL on this path too.  torchvision 0.29
deprecates its image decoders in favour of torchcodec (a DeprecationWarning on first use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from .. import MODEL_NAME, __version__
from ..constants import PREPROCESS_METHODS
from ..errors import BadImageError, NotRegularFile, ValidateError
from ..schemas import open_regular
from ..versions import module_versions

_PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
_FAST_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class DataConfig:
    """A model's published evaluation preprocessing: square centre crop of ``image_size`` after
    resizing the shorter side to ``floor(image_size / crop_pct)``, then ``(x - mean) / std``."""

    image_size: int
    crop_pct: float
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def resize_size(self) -> int:
        # (the epsilon: torchvision's 224/232 crop must give 232 back, not 231.999...)
        return math.floor(self.image_size / self.crop_pct + 1e-9)


@lru_cache(maxsize=None)
def model_data_config(model_name: str = MODEL_NAME) -> DataConfig:
    """The published evaluation preprocessing of ``model_name`` (a ``models`` key): timm's data config for
    its default pretrained tag, or the transform torchvision publishes with the card's weights.

    A registry lookup: no weights, no network, no model built.  timm's ``test_input_size`` /
    ``test_crop_pct`` are not used -- timm's own validation uses them only when asked to.
    """
    from ..models import published_transform

    return DataConfig(**published_transform(model_name))


def _published(name: str):
    """A dataclass field whose default is read from the model's published data config on first use."""
    return field(default_factory=lambda: getattr(model_data_config(), name))


SKIP_BAD_ADVICE = "replace or remove the file, or pass --skip-bad-images to count it as a wrong prediction"
# PIL refuses (DecompressionBombError) above twice its warning limit; the fast path applies the same bound.
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
# 16-bit and float pixels: PIL's convert("RGB"), the reference transform's, clips them to white.
_UNSUPPORTED_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


def _open_regular(path: Path):
    """``path`` opened by ``schemas.open_regular`` (regular files only, a FIFO refused rather than waited
    on), its refusals as BadImageError."""
    try:
        return open_regular(path)
    except NotRegularFile as exc:
        raise BadImageError(path, f"it is {exc}, not a regular file") from None
    except FileNotFoundError:
        raise BadImageError(path, "file not found") from None
    except OSError as exc:
        raise BadImageError(path, exc.strerror or str(exc)) from None


@dataclass(frozen=True)
class Preprocess:
    image_size: int = _published("image_size")
    crop_pct: float = _published("crop_pct")
    interpolation: str = _published("interpolation")
    mean: tuple = _published("mean")  # per channel, in RGB order whatever channel_order is
    std: tuple = _published("std")
    channel_order: str = "RGB"  # "BGR" swaps channels in the uint8 stage (BGR-trained models, self-tests)
    method: str = "exact"  # "exact" (PIL, bit-exact to torchvision classic) | "fast" (decode_jpeg + tensor resize)

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if not isinstance(self.image_size, int) or self.image_size <= 0:
            raise ValidateError(f"preprocess image_size={self.image_size!r}: must be a positive integer")
        if not 0 < self.crop_pct <= 2:
            raise ValidateError(f"preprocess crop_pct={self.crop_pct!r}: must be in (0, 2] (0.875 for the card)")
        if self.interpolation not in _PIL_FILTERS:
            raise ValidateError(
                f"preprocess interpolation={self.interpolation!r}: use one of {', '.join(_PIL_FILTERS)}"
            )
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValidateError(f"preprocess channel_order={self.channel_order!r}: use RGB or BGR")
        if self.method not in PREPROCESS_METHODS:
            raise ValidateError(f"preprocess method={self.method!r}: use 'exact' or 'fast'")
        if self.method == "fast" and self.interpolation not in _FAST_INTERPOLATIONS:
            raise ValidateError(
                f"preprocess method='fast' supports interpolation {', '.join(_FAST_INTERPOLATIONS)}, "
                f"not {self.interpolation!r}; use method='exact'"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValidateError(f"preprocess mean={self.mean} std={self.std}: need 3 values each, std > 0")

    @classmethod
    def published(cls, model_name: str = MODEL_NAME, **overrides) -> "Preprocess":
        """The preprocessing ``model_name``'s publisher gives (``model_data_config``), with ``overrides``."""
        config = model_data_config(model_name)
        values = {"image_size": config.image_size, "crop_pct": config.crop_pct, "interpolation": config.interpolation,
                  "mean": config.mean, "std": config.std}
        return cls(**{**values, **overrides})

    @classmethod
    def for_card(cls, card, method: str = "exact") -> "Preprocess":
        """A card's preprocessing: its model's published transform, or the explicit values the card gives."""
        if card.preprocess is None:
            return cls.published(card.model_key, method=method)
        return cls(**card.preprocess, method=method)

    @property
    def resize_size(self) -> int:
        """Shorter side after resizing, as timm computes it: floor(image_size / crop_pct)."""
        return math.floor(self.image_size / self.crop_pct + 1e-9)  # (epsilon: 224/232 gives 232, not 231.99)

    # -- keys -------------------------------------------------------------------------------

    def pixel_settings(self) -> dict:
        """The settings that change the uint8 pixels."""
        return {"image_size": self.image_size, "resize_size": self.resize_size, "interpolation": self.interpolation,
                "channel_order": self.channel_order, "method": self.method}

    def settings(self) -> dict:
        """Every setting of the transform, without library versions (what a baseline must match)."""
        return {**self.pixel_settings(), "crop_pct": self.crop_pct, "mean": self.mean, "std": self.std}

    def pixel_key_parts(self) -> dict:
        """Everything that changes the uint8 pixels (the cache key of preprocessed images)."""
        import PIL

        parts = {**self.pixel_settings(), "pillow": PIL.__version__, "res2net_validate": __version__}
        if self.method == "fast":
            parts.update(module_versions("torch", "torchvision"))
        return parts

    def key_parts(self) -> dict:
        """Everything that changes the model's input, normalisation included, plus versions."""
        return {**self.pixel_key_parts(), "crop_pct": self.crop_pct, "mean": self.mean, "std": self.std}

    def describe(self) -> str:
        return (
            f"Resize({self.resize_size}, {self.interpolation}) -> CenterCrop({self.image_size}) -> "
            f"Normalize(mean={self.mean}, std={self.std}), {self.channel_order}, {self.method} path"
        )

    # -- stage 1: file -> uint8 CHW ---------------------------------------------------------

    def load_uint8(self, path: str | Path) -> np.ndarray:
        """Decode, resize and centre-crop one image: ``(3, S, S)`` uint8 in ``channel_order``.

        Raises :class:`BadImageError` (a ValidateError naming the file) for undecodable files.
        """
        path = Path(path)
        if self.method == "fast":
            chw = _load_fast(path, self)
        else:
            chw = _load_exact(path, self)
        if self.channel_order == "BGR":
            chw = chw[::-1]
        return np.ascontiguousarray(chw)

    # -- stage 2: uint8 NCHW -> float32 NCHW ------------------------------------------------

    def normalize(self, batch_uint8: np.ndarray) -> np.ndarray:
        """``(x / 255 - mean) / std`` per channel, float32 NCHW, bit-exact to ToTensor + Normalize.

        torchvision computes ``float(x).div(255)``, then ``sub_(mean)``, ``div_(std)`` in float32.
        Those are correctly rounded IEEE operations, so numpy doing the same in the same order gives
        the same bits -- checked once per (mean, std) on all 256 levels against torch itself, with
        torch as the fallback.  Working one image at a time keeps the passes in the CPU cache.
        """
        batch_uint8 = np.asarray(batch_uint8)
        if batch_uint8.dtype != np.uint8 or batch_uint8.ndim != 4 or batch_uint8.shape[1] != 3:
            raise ValueError(f"normalize expects a uint8 (N, 3, H, W) batch, got {batch_uint8.dtype} {batch_uint8.shape}")
        mean, std = self.channel_stats()
        if not _numpy_matches_torch(mean, std):
            return _normalize_torch(batch_uint8, mean, std)
        out = np.empty(batch_uint8.shape, dtype=np.float32)
        mean_column = np.array(mean, dtype=np.float32).reshape(3, 1, 1)
        std_column = np.array(std, dtype=np.float32).reshape(3, 1, 1)
        for image, result in zip(batch_uint8, out):
            np.divide(image, np.float32(255), out=result, dtype=np.float32)
            result -= mean_column
            result /= std_column
        return out

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) in the order of the output channels (reversed for BGR)."""
        order = (0, 1, 2) if self.channel_order == "RGB" else (2, 1, 0)
        return tuple(self.mean[c] for c in order), tuple(self.std[c] for c in order)


def _normalize_torch(batch_uint8: np.ndarray, mean, std) -> np.ndarray:
    """torchvision's own ops: ToTensor's ``to(float32).div(255)``, Normalize's ``sub_``/``div_``."""
    import torch

    batch = torch.from_numpy(batch_uint8.astype(np.float32))  # exact: every uint8 is a float32
    batch.div_(255)
    batch.sub_(torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
    batch.div_(torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
    return batch.numpy()


@lru_cache(maxsize=16)
def _numpy_matches_torch(mean: tuple, std: tuple) -> bool:
    levels = np.broadcast_to(np.arange(256, dtype=np.uint8).reshape(1, 1, 1, 256), (1, 3, 1, 256))
    levels = np.ascontiguousarray(levels)
    reference = _normalize_torch(levels, mean, std)
    ours = np.divide(levels, np.float32(255), dtype=np.float32)
    ours -= np.array(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    ours /= np.array(std, dtype=np.float32).reshape(1, 3, 1, 1)
    return np.array_equal(ours, reference)


def resized_size(height: int, width: int, shorter: int) -> tuple[int, int]:
    """Output (height, width) of Resize(shorter) -- torchvision's rule, long side truncated."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shorter, int(shorter * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    return new_h, new_w


def center_crop_box(height: int, width: int, crop: int) -> tuple[int, int]:
    """(top, left) of CenterCrop(crop) on an image at least ``crop`` in both sides -- torchvision's rounding."""
    return int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))


def _open_rgb(path: Path) -> Image.Image:
    try:
        with _open_regular(path) as file, Image.open(file) as img:
            if img.mode in _UNSUPPORTED_MODES:
                raise BadImageError(path, f"its pixels are {img.mode} (16-bit or floating point), which the "
                                    "reference transform's convert('RGB') clips to white; save it as 8-bit")
            img.load()
            return img if img.mode == "RGB" else img.convert("RGB")
    except Image.UnidentifiedImageError:  # its message names the file object, not the file
        raise BadImageError(path, "not an image file PIL can identify") from None
    except Image.DecompressionBombError as exc:
        raise BadImageError(path, str(exc)) from None
    except (OSError, ValueError, SyntaxError) as exc:
        # UnidentifiedImageError (not an image), "image file is truncated", broken data streams.
        raise BadImageError(path, str(exc) or type(exc).__name__) from None


def _pad_to_crop(chw: np.ndarray, crop: int) -> np.ndarray:
    """Zero-pad like torchvision's CenterCrop when the image is smaller than the crop."""
    _, height, width = chw.shape
    pad_h, pad_w = max(crop - height, 0), max(crop - width, 0)
    if not pad_h and not pad_w:
        return chw
    return np.pad(chw, ((0, 0), (pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2)))


def _crop_chw(chw: np.ndarray, crop: int) -> np.ndarray:
    chw = _pad_to_crop(chw, crop)
    _, height, width = chw.shape
    top, left = center_crop_box(height, width, crop)
    return chw[:, top : top + crop, left : left + crop]


def _load_exact(path: Path, preprocess: Preprocess) -> np.ndarray:
    img = _open_rgb(path)
    height, width = resized_size(img.height, img.width, preprocess.resize_size)
    if (height, width) != (img.height, img.width):
        img = img.resize((width, height), _PIL_FILTERS[preprocess.interpolation])
    crop = preprocess.image_size
    if height >= crop and width >= crop:
        top, left = center_crop_box(height, width, crop)
        img = img.crop((left, top, left + crop, top + crop))
        return np.asarray(img).transpose(2, 0, 1)
    return _crop_chw(np.asarray(img).transpose(2, 0, 1), crop)


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame, not DHT/JPG/DAC


def _jpeg_frame(data: np.ndarray) -> tuple[int, int, int] | None:
    """(components, height, width) from a JPEG's frame header (1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK); None
    when it is not a JPEG."""
    raw = data[:65536].tobytes()  # the frame header sits after the APPn segments, near the start
    if raw[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(raw):
        if raw[pos] != 0xFF:
            return None
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _SOF_MARKERS:
            if pos + 9 >= len(raw):
                return None
            height, width = int.from_bytes(raw[pos + 5:pos + 7], "big"), int.from_bytes(raw[pos + 7:pos + 9], "big")
            return raw[pos + 9], height, width
        pos += 2 + int.from_bytes(raw[pos + 2 : pos + 4], "big")
    return None


def _load_fast(path: Path, preprocess: Preprocess) -> np.ndarray:
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    # libjpeg-turbo through torchvision for ordinary (YCbCr / grayscale) JPEGs; PIL for everything
    # else (PNG, CMYK JPEG, ...) so that odd files decode exactly like the reference path.
    with _open_regular(path) as file:
        data = np.frombuffer(bytearray(file.read()), dtype=np.uint8)  # writable, for torch.from_numpy
    frame = _jpeg_frame(data)
    if frame is not None and MAX_PIXELS and frame[1] * frame[2] > MAX_PIXELS:
        # decode_jpeg would allocate height x width x 3 bytes before finding the data is 47 KB long
        raise BadImageError(path, f"its header claims {frame[2]}x{frame[1]} pixels ({frame[1] * frame[2]:,}), more "
                            f"than the {MAX_PIXELS:,} allowed (a decompression bomb: PIL's limit, as on the exact path)")
    if frame is not None and frame[0] in (1, 3):
        try:
            tensor = decode_jpeg(torch.from_numpy(data), mode=ImageReadMode.RGB)
        except RuntimeError as exc:
            # torchvision prefixes "decode_jpeg, <source file>:<line>, " to libjpeg's message
            raise BadImageError(path, str(exc).splitlines()[0].split(", ")[-1]) from None
    else:
        tensor = torch.from_numpy(np.asarray(_open_rgb(path)).transpose(2, 0, 1).copy())

    _, height, width = tensor.shape
    new_size = resized_size(height, width, preprocess.resize_size)
    if new_size != (height, width):
        mode = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR,
                "bicubic": InterpolationMode.BICUBIC}[preprocess.interpolation]
        tensor = F.resize(tensor, list(new_size), interpolation=mode, antialias=True)
    return _crop_chw(tensor.numpy(), preprocess.image_size)


# ----------------------------------------------------------------------------------------------
# How far is the fast path from the reference?


@dataclass(frozen=True)
class MethodDiff:
    images: int
    max_abs_lsb: int  # largest |fast - exact| over all pixels, in uint8 levels
    mean_abs_lsb: float
    fraction_differing: float  # share of pixel values that differ at all

    def describe(self) -> str:
        return (
            f"fast vs exact preprocessing on {self.images} images: max |diff| {self.max_abs_lsb} LSB, "
            f"mean {self.mean_abs_lsb:.4f} LSB, {100 * self.fraction_differing:.2f}% of values differ"
        )


def compare_methods(paths, preprocess: Preprocess | None = None) -> MethodDiff:
    """Run both methods on ``paths`` and measure the fast path's deviation from the exact one."""
    preprocess = preprocess or Preprocess()
    settings = {f.name: getattr(preprocess, f.name) for f in fields(preprocess) if f.init}
    exact = Preprocess(**{**settings, "method": "exact"})
    fast = Preprocess(**{**settings, "method": "fast"})
    max_abs, total_abs, differing, values, count = 0, 0, 0, 0, 0
    for path in paths:
        diff = np.abs(exact.load_uint8(path).astype(np.int16) - fast.load_uint8(path).astype(np.int16))
        max_abs = max(max_abs, int(diff.max()))
        total_abs += int(diff.sum())
        differing += int(np.count_nonzero(diff))
        values += diff.size
        count += 1
    if not count:
        raise ValueError("compare_methods needs at least one image")
    return MethodDiff(count, max_abs, total_abs / values, differing / values)
