"""The embedded default's stand-in checkpoint: a seeded backbone, re-estimated BatchNorm, a fitted head.

Nothing here names a layer of a particular network: the stem is the first ``Conv2d`` that reads the
three colour channels (:func:`stem_conv`), the BatchNorms a trained network would not have at zero are
the ones the architecture's own init sets to zero (:func:`zero_initialised_norms`), and the pooled
features are whatever the final 1000-way ``Linear`` receives (:func:`classifier`, :func:`pooled_features`).
"""

from __future__ import annotations

import io

from PIL import Image

from .. import MODEL_NAME
from ..data.preprocess import model_data_config

NUM_CLASSES = 1000  # the ImageNet-1k classifier every card's network ends in


def evaluation_transform(model_key: str = MODEL_NAME):
    """The model's published evaluation transform (``models.published_transform``: timm's data config, or
    the transform torchvision publishes with the card's weights -- resize, crop, mean, std), run by
    torchvision: an implementation independent of the suite's own Preprocess, which the embedded
    default is used to check."""
    from torchvision import transforms

    config = model_data_config(model_key)
    return transforms.Compose([
        transforms.Resize(config.resize_size, interpolation=transforms.InterpolationMode(config.interpolation)),
        transforms.CenterCrop(config.image_size),
        transforms.ToTensor(),
        transforms.Normalize(config.mean, config.std),
    ])


def jpeg_to_tensor(data: bytes, transform=None):
    transform = transform or evaluation_transform()
    with Image.open(io.BytesIO(data)) as image:
        return transform(image.convert("RGB"))


def stem_conv(model):
    """``(name, module)`` of the network's stem: the first ``Conv2d`` (in module order) reading 3 channels."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            return name, module
    raise ValueError(f"{type(model).__name__}: no Conv2d with 3 input channels (no RGB stem)")


def classifier(model, num_outputs: int = NUM_CLASSES):
    """``(name, module)`` of the network's final classifier: the last ``Linear`` with ``num_outputs`` outputs
    (``fc`` or ``head.fc`` in timm, ``fc`` or ``classifier.<last>`` in torchvision's builders)."""
    import torch

    found = [(name, m) for name, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and m.out_features == num_outputs]
    if not found:
        raise ValueError(f"{type(model).__name__}: no Linear layer with {num_outputs} outputs (no classifier)")
    return found[-1]


def zero_initialised_norms(model) -> list[str]:
    """Names of the BatchNorms whose scale the architecture's init sets to zero (e.g. timm's
    ``zero_init_last``: the last BN of every residual branch), so the branch starts as an identity."""
    import torch

    return [name for name, m in model.named_modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.weight is not None
            and not m.weight.detach().any()]


def seeded_backbone(params, model_key: str = MODEL_NAME):
    """The seeded random init of ``model_key`` with two trained-network traits restored
    (``params``: an EmbeddedParams)."""
    import torch

    from ..graphs.checkpoint import create_model

    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
        torch.manual_seed(params.seed)
        model = create_model(model_key)
    # Some inits zero the last BN of every residual branch (a training trick): the branch would
    # then contribute nothing.  A trained network's last BN scales are small but non-zero.
    modules = dict(model.named_modules())
    for name in zero_initialised_norms(model):
        modules[name].weight.data.fill_(params.bn3_gamma)
    stem = stem_conv(model)[1]
    if params.conv_identity:
        add_identity_paths(model, params.conv_identity, skip=stem)
    if params.black_blind_stem:
        make_black_blind(stem.weight.data, model_key)
    return model


def add_identity_paths(model, weight: float, skip=None) -> None:
    """Give every ``Conv2d`` (but ``skip``, the stem) an identity component, in place: ``weight`` times each
    filter's norm at the position ``torch.nn.init.dirac_`` marks (output channel i reads input channel i at
    the kernel's centre; a strided one subsamples; a depthwise one keeps its channel).

    Shortcuts carry what a network's early layers see -- colour, local texture statistics -- to its
    pooled features: a ResNet's are its residual connections (with the branches' last BN scaled down,
    see ``bn3_gamma``).  A random network without them (the transitions of an inverted-residual net)
    mixes those statistics away within a few layers, and a linear head on its pooled features cannot
    tell the generated classes apart; a trained one keeps them.  This restores that trait for any
    convolutional network without naming its layers."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and module is not skip:
            w = module.weight.data
            identity = torch.zeros_like(w)
            torch.nn.init.dirac_(identity, module.groups)
            w.add_(weight * w.flatten(1).norm(dim=1)[:, None, None, None] * identity)


def make_black_blind(weight, model_key: str = MODEL_NAME) -> None:
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

    config = model_data_config(model_key)  # the normalisation the stem sees
    black = torch.tensor([-m / s for m, s in zip(config.mean, config.std)], dtype=torch.float64)
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
    """The final classifier's input (the pooled backbone features) for every image of ``batches``, float64.

    Read with a forward hook on :func:`classifier`, so it is what the network itself feeds its head
    (timm's ``forward_head(..., pre_logits=True)``, after any pooling, flattening and eval-mode dropout)."""
    import torch

    _name, head = classifier(model)
    chunks = []

    def keep_input(_module, inputs):
        chunks.append(inputs[0].detach().double())

    handle = head.register_forward_pre_hook(keep_input)
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        handle.remove()
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


def full_head(weight, bias, classes: tuple[int, ...], features, seed: int, num_outputs: int = NUM_CLASSES):
    """The 1000-way classifier from the fitted rows for ``classes``.

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
