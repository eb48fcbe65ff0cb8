"""The embedded default: generated data and stand-in checkpoint, for every packaged card's model.

A tiny parameterisation (2 classes, a handful of images) is generated once per module and card into a
temporary cache; the full-size artifact is too slow for unit tests (the accuracy self-tests
use it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from res2net_validate import MODEL_NAME
from res2net_validate.embedded import default as embedded
from res2net_validate.data.preprocess import model_data_config
from res2net_validate.embedded import render, standin
from res2net_validate.cache import ArtifactCache, content_key
from res2net_validate.cards import load_card, packaged_cards
from res2net_validate.imagenet import canonical_val_labels, canonical_wnids
from res2net_validate.errors import ValidateError
from res2net_validate.graphs.checkpoint import create_model, load_model, read_state_dict

TINY = embedded.EmbeddedParams(
    num_classes=2, val_images_per_class=2, train_images_per_class=2, bn_images=4, batch_size=4, head_steps=30
)
CARDS = packaged_cards()
NEW_CARDS = [name for name in CARDS if load_card(name).model_key != MODEL_NAME]


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = ArtifactCache(tmp_path_factory.mktemp("cache"))
    return cache, embedded.ensure_embedded_default(cache, progress=False, params=TINY)


def test_rendering_is_a_pure_function_of_its_stream():
    first = embedded.render_jpeg(TINY, embedded._SPLIT_VAL, 0, 0)
    assert embedded.render_jpeg(TINY, embedded._SPLIT_VAL, 0, 0) == first
    assert embedded.render_jpeg(TINY, embedded._SPLIT_VAL, 0, 1) != first
    assert embedded.render_jpeg(TINY, embedded._SPLIT_TRAIN, 0, 0) != first
    other_seed = embedded.EmbeddedParams(seed=1, num_classes=2, val_images_per_class=2)
    assert embedded.render_jpeg(other_seed, embedded._SPLIT_VAL, 0, 0) != first


def test_colour_pairs_are_red_blue_mirrors():
    # The BGR sensitivity rests on this: swapping R and B turns each class into its partner.
    for first, second in zip(embedded.CONCEPTS[0::2], embedded.CONCEPTS[1::2]):
        assert first.texture == second.texture
        assert first.rgb[::-1] == second.rgb
        assert abs(first.rgb[0] - first.rgb[2]) >= 0.35  # far from its own mirror image
    assert len(set(embedded.CLASS_LABELS)) == len(embedded.CONCEPTS)


def test_dominant_colour_survives_the_centre_crop():
    # what the preprocessing keeps (the 224/256 centre) is dominated by the class colour
    for index in range(6):
        for class_index, (strong, weak) in ((0, (0, 2)), (1, (2, 0))):
            data = embedded.render_jpeg(TINY, embedded._SPLIT_VAL, class_index, index)
            pixels = embedded.jpeg_to_tensor(data) * torch.tensor(model_data_config().std)[:, None, None]
            levels = 255 * (pixels.mean(dim=(1, 2)) + torch.tensor(model_data_config().mean))  # channel means, 0..255
            colour_excess = levels[strong] - levels[weak]
            assert colour_excess > 15


def test_card_layout(tiny):
    _, default = tiny
    root = default.dataset_dir
    lines = (root / embedded.LABEL_FILE).read_text().splitlines()
    assert len(lines) == default.num_images == TINY.num_images == 4
    assert default.classes == (50, 150)
    ground_truth = canonical_val_labels()
    wnids = canonical_wnids()
    names = []
    for line in lines:
        name, label = line.split("\t")
        assert re.fullmatch(r"ILSVRC2012_val_\d{8}\.JPEG", name)
        assert int(label) in default.classes
        assert ground_truth[Path(name).stem] == int(label)  # borrowed names agree with the canonical labels
        path = root / wnids[int(label)] / name
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert image.size in render.IMAGE_SIZES
            assert 300 <= min(image.size) and max(image.size) <= 640
            image.load()
        names.append(name)
    assert names == sorted(names)
    assert sorted(p.name for p in root.rglob("*.JPEG")) == names  # nothing else in the folders
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(wnids[c] for c in default.classes)


def test_checkpoint_is_a_bare_original_format_state_dict(tiny):
    _, default = tiny
    assert default.weights.name == "res2net50_14w_8s-embedded.pth"
    raw = torch.load(default.weights, map_location="cpu", weights_only=True)
    assert isinstance(raw, dict) and all(isinstance(v, torch.Tensor) for v in raw.values())
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.convs.6.weight", "layer1.0.bns.6.running_mean",
                "layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight", "layer4.2.conv3.weight",
                "layer4.2.bn3.weight", "fc.weight", "fc.bias"):
        assert key in raw
    assert not any(k.startswith(("module.", "model.")) for k in raw)
    assert raw["fc.weight"].shape == (1000, 2048)
    assert raw["layer2.1.bn3.weight"].abs().min() > 0  # not timm's zero init
    assert read_state_dict(default.weights).keys() == raw.keys()


def test_checkpoint_loads_and_ranks_generated_classes_first(tiny):
    _, default = tiny
    model = load_model(default.weights)
    lines = (default.dataset_dir / embedded.LABEL_FILE).read_text().splitlines()
    wnids = canonical_wnids()
    batch = []
    for line in lines:
        name, label = line.split("\t")
        batch.append(embedded.jpeg_to_tensor((default.dataset_dir / wnids[int(label)] / name).read_bytes()))
    with torch.no_grad():
        logits = model(torch.stack(batch))
    assert torch.isfinite(logits).all()
    used = list(default.classes)
    unused = [c for c in range(1000) if c not in default.classes]
    assert set(logits.argmax(dim=1).tolist()) <= set(used)
    assert logits[:, unused].max(dim=1).values.mean() < logits[:, used].max(dim=1).values.mean()  # they rank low...
    assert logits[:, unused].std() > 0  # ...but are ordinary, distinct logits


def test_training_split_is_disjoint_from_the_scored_images(tiny):
    _, default = tiny
    info = json.loads((default.dataset_dir.parent / embedded.INFO_FILE).read_text())
    assert info["train_images"] == len(info["train_sha256"]) == 2 * 2
    # the info file records the keyed parameters: a field added later and left at its default is not written,
    # so the default card's artifact stays byte for byte what it was
    assert info["params"] == embedded.cache_key_parts(TINY)["params"] and "conv_identity" not in info["params"]
    scored = {hashlib.sha256(p.read_bytes()).hexdigest() for p in default.dataset_dir.rglob("*.JPEG")}
    assert len(scored) == default.num_images
    assert not scored & set(info["train_sha256"])
    # and by construction: different random streams, never the same picture
    assert set(embedded.train_entries(TINY)) == {(c, i) for c in range(2) for i in range(2)}


def test_second_call_is_a_cache_hit(tiny):
    cache, default = tiny
    started = time.perf_counter()
    again = embedded.ensure_embedded_default(cache, progress=False, params=TINY)
    assert time.perf_counter() - started < 0.5
    assert again == default


def test_regeneration_is_byte_identical(tiny, tmp_path):
    _, default = tiny
    rebuilt = embedded.ensure_embedded_default(ArtifactCache(tmp_path), progress=False, params=TINY)
    assert rebuilt.dataset_dir != default.dataset_dir
    assert _files(rebuilt.dataset_dir.parent) == _files(default.dataset_dir.parent)


def test_cli_prints_where_the_default_is(tiny, monkeypatch, capsys):
    import argparse

    from res2net_validate.cli import embedded as embedded_cli

    cache, default = tiny
    parser = argparse.ArgumentParser()
    embedded_cli.register_cli(parser.add_subparsers())
    args = parser.parse_args(["embedded", "--cache-dir", str(cache.root), "--quiet"])
    monkeypatch.setattr(embedded, "DEFAULT_PARAMS", TINY)  # the tiny artifact is already in this cache
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"dataset:  {default.dataset_dir}  (4 images" in out and f"weights:  {default.weights}" in out
    assert "50 red stripes, 150 blue stripes" in out


def test_key_covers_parameters_and_versions():
    parts = embedded.cache_key_parts(TINY)
    assert parts["generator_version"] == embedded.GENERATOR_VERSION
    assert {"torch", "timm", "pillow", "torchvision", "numpy"} <= set(parts["versions"])
    assert embedded.cache_key_parts(embedded.EmbeddedParams(seed=1)) != embedded.cache_key_parts(
        embedded.EmbeddedParams(seed=0))


@pytest.mark.parametrize("bad", [dict(num_classes=1), dict(num_classes=11), dict(val_images_per_class=51),
                                 dict(train_images_per_class=1), dict(bn_images=1000)])
def test_bad_parameters_are_one_clear_error(bad):
    with pytest.raises(ValidateError, match="embedded default"):
        embedded.EmbeddedParams(**bad)


@pytest.mark.parametrize("name", CARDS)
def test_every_card_has_embedded_thresholds_above_chance(name):
    card = load_card(name)
    thresholds = card.embedded
    assert thresholds is not None, f"card {name} has no embedded: section"
    assert thresholds.model == card.model_key
    assert thresholds.performance == {}
    chance_top1 = 100 / embedded.DEFAULT_PARAMS.num_classes
    for precision in ("fp32", "fp16", "int8"):
        target = thresholds.accuracy_for(precision)
        assert target is not None
        assert 3 * chance_top1 < target.top1 < 100 and 5 * chance_top1 < target.top5 <= 100
    assert set(thresholds.max_drop_vs_fp32) == {"fp16", "int8"}


# -- the generalisation to any card's model ------------------------------------------------------------


def test_the_default_cards_key_parts_are_unchanged():
    """Existing caches of the Res2Net50 embedded default stay valid: the key (less the library versions,
    which are this machine's) is the one generator version 1 always had."""
    parts = embedded.cache_key_parts(embedded.DEFAULT_PARAMS)
    assert parts == embedded.cache_key_parts(embedded.DEFAULT_PARAMS, MODEL_NAME, embedded.WEIGHTS_FILE)
    assert parts["model"] == "res2net50_14w_8s"
    assert parts["params"] == {"seed": 0, "num_classes": 10, "val_images_per_class": 32,
                               "train_images_per_class": 16, "bn_images": 20, "jpeg_quality": 90, "bn3_gamma": 0.5,
                               "black_blind_stem": True, "head_l2": 0.01, "head_steps": 200, "batch_size": 16}
    assert set(parts) == {"generator_version", "model", "params", "concepts", "versions"}
    assert content_key({k: v for k, v in parts.items() if k != "versions"}) == "a80c75aac26ea5c2f6a0"
    assert embedded.WEIGHTS_FILE == "res2net50_14w_8s-embedded.pth"


def test_stand_in_file_names_follow_the_release_without_its_hash():
    assert embedded.stand_in_file(MODEL_NAME, load_card("res2net50").checkpoint_file) == embedded.WEIGHTS_FILE
    for name in CARDS:
        card = load_card(name)
        assert embedded.stand_in_file(card.model_key, card.checkpoint_file) == embedded.stand_in_file(card.model_key)
    assert embedded.stand_in_file("timm_net", "timm_net-1234abcd.pth") == "timm_net-embedded.pth"
    assert embedded.stand_in_file("torchvision:b:W.T", "b_2x-0123456789abcdef.safetensors") == "b_2x-embedded.pth"


def test_a_weights_file_other_than_the_models_own_name_is_keyed():
    own = embedded.cache_key_parts(TINY, MODEL_NAME, embedded.stand_in_file(MODEL_NAME))
    other = embedded.cache_key_parts(TINY, MODEL_NAME, "renamed-embedded.pth")
    assert "weights_file" not in own and other["weights_file"] == "renamed-embedded.pth"
    assert embedded.cache_key_parts(TINY, "torchvision:resnet18:ResNet18_Weights.IMAGENET1K_V1")["model"] != own["model"]
    with pytest.raises(ValidateError, match="bare .pth"):
        embedded.ensure_embedded_default(ArtifactCache(Path("/nonexistent")), params=TINY, weights_file="../x.pth")


def _seeded(key):
    torch.manual_seed(0)
    return create_model(key)


def test_zero_initialised_norms_are_exactly_res2nets_bn3_layers():
    """The generic rule (BatchNorms the seeded init leaves at scale zero) picks the layers the
    Res2Net-specific rule (``*.bn3``) picked, and nothing else; the stem is still ``conv1``."""
    model = _seeded(MODEL_NAME)
    bn3 = [name for name, _ in model.named_modules() if name.endswith(".bn3")]
    assert len(bn3) == 16 and standin.zero_initialised_norms(model) == bn3
    assert standin.stem_conv(model)[0] == "conv1" and standin.classifier(model)[0] == "fc"
    backbone = standin.seeded_backbone(embedded.DEFAULT_PARAMS)
    modules = dict(backbone.named_modules())
    assert all(bool((modules[name].weight == embedded.DEFAULT_PARAMS.bn3_gamma).all()) for name in bn3)
    assert standin.zero_initialised_norms(backbone) == []


def test_the_feature_hook_reads_the_classifiers_input():
    """pooled_features is what the last 1000-way Linear receives: timm's forward_head(pre_logits=True) for
    Res2Net, and the same for a toy network whose classifier sits after dropout inside a Sequential."""
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    model = _seeded(MODEL_NAME)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x), pre_logits=True).double()
    assert torch.equal(standin.pooled_features(model, [x]), expected)

    toy = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(8, 1000), torch.nn.Linear(1000, 16),  # a 1000-way layer that is not the last one
        torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(16, 1000)),
    ).eval()
    assert standin.classifier(toy)[0] == "6.1" and standin.stem_conv(toy)[0] == "0"
    with torch.no_grad():
        assert torch.equal(standin.pooled_features(toy, [x, x[:1]]), torch.cat([toy[:6](x), toy[:6](x[:1])]).double())
    assert not toy[6][1]._forward_pre_hooks  # the hook is gone afterwards
    with pytest.raises(ValueError, match="no Linear layer with 1000 outputs"):
        standin.classifier(torch.nn.Linear(3, 10))
    with pytest.raises(ValueError, match="no Conv2d with 3 input channels"):
        standin.stem_conv(torch.nn.Conv2d(1, 3, 1))


def test_a_cards_embedded_params_override_the_defaults_and_enter_the_key_only_when_set():
    assert embedded.params_for({}) == embedded.params_for(None) == embedded.DEFAULT_PARAMS
    tuned = embedded.params_for({"conv_identity": 4.0, "seed": 3})
    assert (tuned.conv_identity, tuned.seed, tuned.head_l2) == (4.0, 3, embedded.DEFAULT_PARAMS.head_l2)
    assert "conv_identity" not in embedded.cache_key_parts(embedded.DEFAULT_PARAMS)["params"]
    assert embedded.cache_key_parts(tuned)["params"]["conv_identity"] == 4.0
    with pytest.raises(ValidateError, match="unknown parameter.*colour"):
        embedded.params_for({"colour": 1})
    with pytest.raises(ValidateError, match="conv_identity"):
        embedded.params_for({"conv_identity": -1.0})


def test_a_card_with_bad_embedded_params_is_one_clear_error(tmp_path):
    text = load_card("res2net50").path.read_text()
    good = tmp_path / "tuned.yaml"
    good.write_text(text + "embedded_params: {conv_identity: 2, head_l2: 0.05}\n")
    assert load_card(good).embedded_params == {"conv_identity": 2, "head_l2": 0.05}
    assert load_card("res2net50").embedded_params == {}
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "embedded_params: {conv_identities: 2}\n")
    from res2net_validate.session import ValidationSession
    from res2net_validate.settings import OPTIONS, Settings

    # checked at start-up of an --embedded run (the core cards module cannot import the embedded layer)
    values = {option.name: option.default for option in OPTIONS}
    values.update(card=str(bad), embedded=True, checkpoints_dir=tmp_path / "cache", lock_timeout=None)
    session = ValidationSession(Settings(values), progress=False)
    with pytest.raises(ValidateError, match=r"bad.yaml: embedded_params: .*unknown parameter\(s\) conv_identities"):
        session.preflight.check_embedded_params()
    with pytest.raises(ValidateError, match=r"bad.yaml: embedded_params: .*unknown parameter\(s\) conv_identities"):
        embedded.ensure_card_default(ArtifactCache(tmp_path / "cache"), load_card(bad), progress=False)
    assert not (tmp_path / "cache" / embedded.KIND).exists()  # refused before anything is generated
    bad.write_text(text + "embedded_params: {conv_identity: [1]}\n")
    with pytest.raises(ValidateError, match="embedded_params"):
        load_card(bad)


def test_identity_paths_add_a_scaled_dirac_to_every_conv_but_the_stem():
    torch.manual_seed(0)
    toy = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 3, groups=8),
                              torch.nn.Conv2d(8, 4, 1, stride=2))
    before = [m.weight.detach().clone() for m in toy]
    standin.add_identity_paths(toy, 2.0, skip=toy[0])
    assert torch.equal(toy[0].weight, before[0])
    for module, old in zip(toy[1:], before[1:]):
        identity = torch.zeros_like(old)
        torch.nn.init.dirac_(identity, module.groups)
        expected = old + 2.0 * old.flatten(1).norm(dim=1)[:, None, None, None] * identity
        assert torch.allclose(module.weight, expected)
    assert toy[1].weight[:, 0, 1, 1].abs().min() > toy[1].weight[:, 0, 0, 0].abs().max()  # centre taps dominate


@pytest.fixture(scope="module", params=NEW_CARDS)
def tiny_card(request, tmp_path_factory):
    """The tiny embedded default of each card whose model is not the default one (one build per card), with
    the card's own embedded_params."""
    card = load_card(request.param)
    cache = ArtifactCache(tmp_path_factory.mktemp(f"cache-{card.name}"))
    params = dataclasses.replace(TINY, **card.embedded_params)
    return card, embedded.ensure_embedded_default(cache, progress=False, params=params, model_key=card.model_key,
                                                  weights_file=embedded.stand_in_file(card.model_key,
                                                                                      card.checkpoint_file))


def test_each_cards_stand_in_loads_strictly_in_its_release_format(tiny_card):
    card, default = tiny_card
    assert default.weights.name == embedded.stand_in_file(card.model_key, card.checkpoint_file)
    raw = torch.load(default.weights, map_location="cpu", weights_only=True)
    assert isinstance(raw, dict) and all(isinstance(v, torch.Tensor) for v in raw.values())
    assert not any(k.startswith(("module.", "model.")) for k in raw)
    model = load_model(default.weights, card.model_key, card.checkpoint_file)  # strict: any mismatch raises
    assert sum(p.numel() for p in model.parameters()) == card.parameters
    assert set(raw) == set(model.state_dict())
    info = json.loads((default.dataset_dir.parent / embedded.INFO_FILE).read_text())
    assert card.model_key in info["what"]


def test_each_cards_stand_in_has_its_head_folded_into_the_classifier(tiny_card):
    card, default = tiny_card
    model = load_model(default.weights, card.model_key, card.checkpoint_file)
    _name, head = standin.classifier(model)
    assert head.weight.shape[0] == 1000
    transform = standin.evaluation_transform(card.model_key)
    lines = (default.dataset_dir / embedded.LABEL_FILE).read_text().splitlines()
    wnids = canonical_wnids()
    batch = []
    for line in lines:
        name, label = line.split("\t")
        batch.append(embedded.jpeg_to_tensor((default.dataset_dir / wnids[int(label)] / name).read_bytes(), transform))
    with torch.no_grad():
        logits = model(torch.stack(batch))
    assert set(logits.argmax(dim=1).tolist()) <= set(default.classes)  # the generated classes rank first
    stem = standin.stem_conv(model)[1].weight.double()
    black = torch.tensor([-m / s for m, s in zip(model_data_config(card.model_key).mean,
                                                   model_data_config(card.model_key).std)], dtype=torch.float64)
    assert (stem.sum(dim=(2, 3)) @ black).abs().max() < 1e-4  # the stem is blind to black
