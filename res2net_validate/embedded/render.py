"""The embedded default's pictures: procedural visual concepts drawn as JPEG-ready images."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

# ImageNet-like picture sizes (width, height): the common shapes of the validation set.
IMAGE_SIZES = (
    (500, 375), (375, 500), (500, 333), (333, 500), (500, 400),
    (400, 500), (640, 480), (480, 640), (500, 500), (600, 450),
)


@dataclass(frozen=True)
class Concept:
    """One generated class: a texture in a dominant colour (RGB in 0..1)."""

    name: str
    texture: str
    rgb: tuple[float, float, float]


# Five red/blue mirror pairs; the two classes of a pair share a texture, so colour is what
# tells them apart -- and a swapped channel order turns each into the other.
CONCEPTS = (
    Concept("red stripes", "stripes", (0.86, 0.14, 0.10)),
    Concept("blue stripes", "stripes", (0.10, 0.14, 0.86)),
    Concept("orange checkerboard", "checker", (0.95, 0.55, 0.08)),
    Concept("azure checkerboard", "checker", (0.08, 0.55, 0.95)),
    Concept("yellow dots", "dots", (0.92, 0.84, 0.12)),
    Concept("cyan dots", "dots", (0.12, 0.84, 0.92)),
    Concept("rose rings", "rings", (0.90, 0.20, 0.50)),
    Concept("violet rings", "rings", (0.50, 0.20, 0.90)),
    Concept("lime mesh", "mesh", (0.60, 0.88, 0.10)),
    Concept("spring-green mesh", "mesh", (0.10, 0.88, 0.60)),
)


def _texture(kind: str, u: np.ndarray, v: np.ndarray, period: float, rng: np.random.Generator) -> np.ndarray:
    """A pattern in [0, 1] over object coordinates (u, v); 1 is the bright phase."""
    phase_u, phase_v = (np.float32(p) for p in rng.uniform(0, 2 * math.pi, 2))
    k = np.float32(2 * math.pi / period)
    period = np.float32(period)
    if kind == "stripes":
        wave = np.sin(k * v + phase_v)
    elif kind == "checker":
        wave = np.sin(k * u + phase_u) * np.sin(k * v + phase_v) * 2.5
    elif kind == "dots":
        # a lattice of round dots of radius ~0.3 period
        du = np.mod(u / period + phase_u / (2 * math.pi), 1.0) - 0.5
        dv = np.mod(v / period + phase_v / (2 * math.pi), 1.0) - 0.5
        wave = (0.3 - np.sqrt(du * du + dv * dv)) * 12
    elif kind == "rings":
        wave = np.sin(k * np.sqrt(u * u + v * v) + phase_u)
    elif kind == "mesh":
        # thin lines in both directions (a grid), bright on a dark ground
        line_u = np.abs(np.mod(u / period + phase_u / (2 * math.pi), 1.0) - 0.5)
        line_v = np.abs(np.mod(v / period + phase_v / (2 * math.pi), 1.0) - 0.5)
        wave = (np.maximum(line_u, line_v) - 0.38) * 20
    else:
        raise ValueError(f"unknown texture {kind!r}")
    # soft square wave: crisp edges that still anti-alias
    return 0.5 + 0.5 * np.tanh(3 * wave)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int, channels: int) -> np.ndarray:
    """Low-frequency noise: a coarse random grid upsampled bicubically, roughly N(0, 1)."""
    coarse = rng.normal(size=(cells, cells, channels)).astype(np.float32)
    planes = [
        np.asarray(Image.fromarray(coarse[..., c], mode="F").resize((width, height), Image.Resampling.BICUBIC))
        for c in range(channels)
    ]
    return np.stack(planes, axis=-1)


def render_image(concept: Concept, rng: np.random.Generator) -> Image.Image:
    """One picture of ``concept``: a textured, coloured object on a cluttered background."""
    width, height = IMAGE_SIZES[rng.integers(len(IMAGE_SIZES))]
    short = min(width, height)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)

    # Background: a dull grey-brown with smooth blotches; its tint is R/B-symmetric in law.
    level = rng.uniform(0.25, 0.7)
    tint = rng.normal(0, 0.04, 3).astype(np.float32)
    background = (level + tint) + np.float32(0.08) * _smooth_noise(rng, width, height, 5, 3)

    # The object: an ellipse near the centre (inside the 224/256 centre crop), any orientation.
    cx = width / 2 + rng.uniform(-0.1, 0.1) * width
    cy = height / 2 + rng.uniform(-0.1, 0.1) * height
    angle = rng.uniform(-math.pi / 12, math.pi / 12)  # textures keep a dominant orientation
    cos, sin = math.cos(angle), math.sin(angle)
    u = (xs - cx) * cos + (ys - cy) * sin
    v = -(xs - cx) * sin + (ys - cy) * cos
    radius_u, radius_v = short * rng.uniform(0.22, 0.4, 2)
    distance = np.sqrt(np.square(u * np.float32(1 / radius_u)) + np.square(v * np.float32(1 / radius_v)))
    mask = np.clip((1 - distance) * np.float32(short * 0.05), 0, 1)[..., None]

    pattern = _texture(concept.texture, u, v, short * rng.uniform(0.05, 0.1), rng)[..., None]
    colour = np.clip(np.asarray(concept.rgb) + rng.normal(0, 0.04, 3), 0, 1)
    grey = colour.mean()
    colour = (grey + rng.uniform(0.75, 1.0) * (colour - grey)).astype(np.float32)  # saturation jitter
    dark = colour * np.float32(rng.uniform(0.3, 0.55))
    foreground = dark + (colour - dark) * pattern

    picture = background * (1 - mask) + foreground * mask

    # Lighting: overall exposure and a gradient across the picture; then sensor noise.
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (xs - width / 2) * np.float32(math.cos(direction) / short) + (ys - height / 2) * np.float32(
        math.sin(direction) / short
    )
    gain = np.float32(rng.uniform(0.75, 1.15)) * (1 + np.float32(rng.uniform(0, 0.35)) * ramp)
    picture *= gain[..., None]
    # sensor noise, uniform (cheaper to draw than Gaussian; JPEG smooths the difference away)
    noise_level = np.float32(rng.uniform(0.01, 0.04) * 255 * math.sqrt(12))
    picture = picture * np.float32(255) + (rng.random(picture.shape, dtype=np.float32) - 0.5) * noise_level
    return Image.fromarray(np.clip(picture + 0.5, 0, 255).astype(np.uint8), mode="RGB")


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
