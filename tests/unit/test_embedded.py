"""The embedded default: generated data and stand-in checkpoint.

A tiny parameterisation (2 classes, a handful of images) is generated once per session into a
temporary cache; the full-size artifact is too slow for unit tests (the accuracy self-tests
use it).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from res2net_validate.embedded import default as embedded
from res2net_validate.data.preprocess import model_data_config
from res2net_validate.embedded import render
from res2net_validate.cache import ArtifactCache
from res2net_validate.imagenet import canonical_val_labels, canonical_wnids
from res2net_validate.errors import ValidateError
from res2net_validate.graphs.checkpoint import load_model, read_state_dict

TINY = embedded.EmbeddedParams(
    num_classes=2, val_images_per_class=2, train_images_per_class=2, bn_images=4, batch_size=4, head_steps=30
)


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
    monkeypatch.setattr(embedded_cli, "DEFAULT_PARAMS", TINY)  # the tiny artifact is already in this cache
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


def test_thresholds_file_is_valid_and_above_chance():
    from res2net_validate.cards import load_card

    thresholds = load_card("res2net50").embedded
    assert thresholds.model == "res2net50_14w_8s"
    assert thresholds.performance == {}
    chance_top1 = 100 / embedded.DEFAULT_PARAMS.num_classes
    for precision in ("fp32", "fp16", "int8"):
        target = thresholds.accuracy_for(precision)
        assert target is not None
        assert 3 * chance_top1 < target.top1 < 100 and 5 * chance_top1 < target.top5 <= 100
