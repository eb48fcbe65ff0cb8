"""Which network a card validates, named by one string that every stage passes along (and that keys the
caches): a timm model name as it is (``res2net50_14w_8s``), or ``torchvision:<builder>:<weights>`` for a
torchvision builder and the weights whose published evaluation transform preprocesses its images
(``torchvision:resnet50:ResNet50_Weights.IMAGENET1K_V1``).  Nothing is downloaded: models are built with
random weights and loaded from the user's file; the published transforms are registry metadata."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ValidateError

LIBRARIES = ("timm", "torchvision")


@dataclass(frozen=True)
class ModelSpec:
    library: str  # "timm" or "torchvision"
    name: str  # timm.create_model's name, or torchvision.models.get_model's builder name
    weights: str | None = None  # torchvision: "ResNet50_Weights.IMAGENET1K_V1" (whose transforms preprocess)

    @property
    def key(self) -> str:
        if self.library == "timm":
            return self.name  # a bare timm name: the cache keys of the first card stay what they were
        return f"{self.library}:{self.name}:{self.weights}"


def parse_model(key: str) -> ModelSpec:
    """The ModelSpec of a model key (see the module docstring)."""
    if ":" not in key:
        return ModelSpec("timm", key)
    parts = key.split(":")
    if len(parts) != 3 or parts[0] != "torchvision" or not all(parts):
        raise ValidateError(f"model {key!r}: expected a timm model name or torchvision:<builder>:<Weights.TAG>")
    return ModelSpec(*parts)


def build(key: str):
    """The network of ``key`` in eval mode, with random weights (1000 ImageNet classes)."""
    spec = parse_model(key)
    if spec.library == "timm":
        import timm

        try:
            return timm.create_model(spec.name, pretrained=False, num_classes=1000).eval()
        except RuntimeError as exc:  # timm's "Unknown model"
            raise ValidateError(f"model {spec.name!r}: {exc}") from None
    import torchvision

    try:
        return torchvision.models.get_model(spec.name, weights=None, num_classes=1000).eval()
    except ValueError as exc:
        raise ValidateError(f"model torchvision {spec.name!r}: {exc}") from None


def published_transform(key: str) -> dict:
    """The evaluation transform the model's publisher gives: image_size, crop_pct (the crop over the resized
    shorter side), interpolation, mean, std.
    A registry lookup: no weights, no network, no model built."""
    spec = parse_model(key)
    if spec.library == "timm":
        return _timm_transform(spec.name)
    return _torchvision_transform(spec)


def _timm_transform(name: str) -> dict:
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as exc:  # a tag timm does not know
        raise ValidateError(f"model {name!r}: {exc}") from None
    if cfg is None:
        raise ValidateError(f"model {name!r}: timm publishes no pretrained data config for it; "
                            "pass a timm model name (see timm.list_models(pretrained=True))")
    _channels, height, width = cfg.input_size
    if height != width or cfg.crop_mode != "center":
        raise ValidateError(f"model {name!r}: timm's data config asks for input {cfg.input_size}, crop mode "
                            f"{cfg.crop_mode!r}; only square centre crops are implemented")
    return {"image_size": int(height), "crop_pct": float(cfg.crop_pct),
            "interpolation": cfg.interpolation, "mean": tuple(map(float, cfg.mean)), "std": tuple(map(float, cfg.std))}


def _torchvision_transform(spec: ModelSpec) -> dict:
    import torchvision

    try:
        weights = torchvision.models.get_weight(spec.weights)
    except (ValueError, AttributeError, KeyError) as exc:
        raise ValidateError(f"model torchvision {spec.name!r}: weights {spec.weights!r} unknown to torchvision "
                            f"({exc}); name them as <Enum>.<TAG>, e.g. ResNet50_Weights.IMAGENET1K_V1") from None
    transform = weights.transforms()
    crop, resize = transform.crop_size, transform.resize_size
    if len(crop) != 1 or len(resize) != 1:
        raise ValidateError(f"weights {spec.weights}: crop {crop}, resize {resize}; only a square centre crop "
                            "after resizing the shorter side is implemented")
    return {"image_size": int(crop[0]), "crop_pct": crop[0] / resize[0],
            "interpolation": transform.interpolation.value, "mean": tuple(map(float, transform.mean)),
            "std": tuple(map(float, transform.std))}
