"""Cards: the YAML format (validated like every input file), the packaged cards, and the models they name."""

from __future__ import annotations

import pytest

from res2net_validate.cards import DEFAULT_CARD, card_path, load_card, packaged_cards, thresholds_of
from res2net_validate.errors import FormatError, ValidateError
from res2net_validate.models import ModelSpec, parse_model

MINIMAL = """\
card: lab
label: LabNet
library: timm
model: resnet18
checkpoint: {file: resnet18-lab.pth, parameters: 11689512}
accuracy:
  fp32: {top1: 69, top5: 88}
"""


def test_the_zoo_cards_ship_and_res2net50_stays_the_default():
    assert DEFAULT_CARD == "res2net50"
    assert {"res2net50", "resnet50", "mobilenet_v2"} <= set(packaged_cards())
    res2net = load_card(DEFAULT_CARD)
    assert (res2net.model_key, res2net.label, res2net.checkpoint_file) == (
        "res2net50_14w_8s", "Res2Net50", "res2net50_14w_8s-6527dddc.pth")
    assert res2net.thresholds.accuracy["fp16"].top1 == 77.92 and res2net.embedded.accuracy["int8"].top1 == 87.0


@pytest.mark.parametrize("name", ["res2net50", "resnet50", "mobilenet_v2"])
def test_each_packaged_card_names_a_model_with_its_published_parameter_count_and_transform(name):
    from res2net_validate.graphs.checkpoint import create_model
    from res2net_validate.models import published_transform

    card = load_card(name)
    model = create_model(card.model_key)
    assert sum(p.numel() for p in model.parameters()) == card.parameters
    transform = published_transform(card.model_key)
    assert transform["image_size"] == 224 and round(transform["image_size"] / transform["crop_pct"]) == 256


def test_the_card_tables_numbers_are_the_zoo_readmes():
    resnet, mobilenet = load_card("resnet50").thresholds, load_card("mobilenet_v2").thresholds
    assert (resnet.accuracy["fp16"].top1, resnet.accuracy["fp16"].top5) == (76.158, 92.872)
    assert (resnet.accuracy["int8"].top1, resnet.accuracy["int8"].top5) == (74.516, 92.87)
    assert resnet.performance == {"MR-V100": {"fp16": 4077.58, "int8": 9113.07}}
    assert (mobilenet.accuracy["fp16"].top1, mobilenet.accuracy["fp16"].top5) == (71.86, 90.316)
    assert "int8" not in mobilenet.accuracy  # that card has no INT8 row
    assert load_card("resnet50").calibration_method == "minmax" and load_card("resnet50").calibration_images == 32


def test_a_card_written_elsewhere_loads_from_its_path(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(MINIMAL)
    card = load_card(str(path))
    assert card.model == ModelSpec("timm", "resnet18") and card.embedded is None and card.preprocess is None
    assert thresholds_of(path).accuracy["fp32"].top1 == 69


@pytest.mark.parametrize("edit, message", [
    (("library: timm", "library: keras"), "library: expected timm or torchvision"),
    (("library: timm", "library: torchvision"), "a torchvision card names its weights"),
    (("parameters: 11689512", "parameters: -1"), "checkpoint.parameters: expected a positive whole number"),
    (("card: lab", "card: Lab Net"), "card: expected a lowercase name"),
    (("label: LabNet\n", "label: LabNet\nflavour: x\n"), "unknown key 'flavour'"),
])
def test_a_malformed_card_is_one_error_naming_the_file_and_key(tmp_path, edit, message):
    path = tmp_path / "lab.yaml"
    path.write_text(MINIMAL.replace(*edit))
    with pytest.raises(FormatError, match=f"card {path}: .*{message}"):
        load_card(str(path))


def test_an_unknown_card_name_lists_the_packaged_ones():
    with pytest.raises(ValidateError, match=r"--card lenet: no such packaged card; choose one of .*res2net50"):
        card_path("lenet")


def test_model_keys_round_trip_and_a_bad_one_is_refused():
    spec = ModelSpec("torchvision", "resnet50", "ResNet50_Weights.IMAGENET1K_V1")
    assert parse_model(spec.key) == spec and parse_model("res2net50_14w_8s") == ModelSpec("timm", "res2net50_14w_8s")
    with pytest.raises(ValidateError, match="expected a timm model name or torchvision"):
        parse_model("keras:resnet50")
