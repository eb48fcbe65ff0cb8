"""Preprocessing settings come from timm's published data config, and agree with the card.

The card's numbers are written here as literals (what /work/shared/seed/pipeline-notes.md says the
card's scripts do); timm's are read at run time from its pretrained config -- an independent source.
"""

from __future__ import annotations

import math

import PIL
import pytest

from res2net_validate import MODEL_NAME, __version__
from res2net_validate.data.preprocess import Preprocess, model_data_config
from res2net_validate.errors import ValidateError

# What the card says: "PIL RGB -> Resize(256) (bilinear, shorter side) -> CenterCrop(224) -> ToTensor ->
# Normalize(mean 0.485/0.456/0.406, std 0.229/0.224/0.225)".
CARD_RESIZE = 256
CARD_CROP = 224
CARD_INTERPOLATION = "bilinear"
CARD_MEAN = (0.485, 0.456, 0.406)
CARD_STD = (0.229, 0.224, 0.225)


def _timm_cfg():
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(MODEL_NAME)


def test_the_card_agrees_with_timms_published_config():
    cfg = _timm_cfg()
    assert cfg.input_size == (3, CARD_CROP, CARD_CROP)
    assert cfg.crop_mode == "center"
    assert math.floor(CARD_CROP / cfg.crop_pct) == CARD_RESIZE  # timm's eval resize: floor(size / crop_pct)
    assert cfg.interpolation == CARD_INTERPOLATION
    assert tuple(cfg.mean) == CARD_MEAN and tuple(cfg.std) == CARD_STD


def test_the_defaults_are_read_from_timm():
    cfg, config, default = _timm_cfg(), model_data_config(), Preprocess()
    assert (default.image_size, default.crop_pct, default.interpolation) == (cfg.input_size[1], cfg.crop_pct,
                                                                             cfg.interpolation)
    assert (default.mean, default.std) == (tuple(cfg.mean), tuple(cfg.std))
    assert (default.image_size, default.resize_size) == (config.image_size, config.resize_size) == (CARD_CROP,
                                                                                                   CARD_RESIZE)


def test_the_defaults_follow_timm_when_it_changes(monkeypatch):
    """Not a copy that happens to agree: a different published config gives different defaults."""
    import timm.models

    original = _timm_cfg()
    changed = original.__class__(**{**original.to_dict(), "input_size": (3, 256, 256), "crop_pct": 0.95,
                                    "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})
    monkeypatch.setattr(timm.models, "get_pretrained_cfg", lambda name: changed)
    model_data_config.cache_clear()
    try:
        default = Preprocess()
        assert (default.image_size, default.resize_size, default.interpolation) == (256, 269, "bicubic")
        assert (default.mean, default.std) == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    finally:
        model_data_config.cache_clear()


def test_preprocess_cache_key_is_unchanged():
    """The key a warm cache was written under (repr: the calibration key hashes it verbatim)."""
    versions = f"'pillow': '{PIL.__version__}', 'res2net_validate': '{__version__}'"
    assert repr(Preprocess().key_parts()) == (
        "{'image_size': 224, 'resize_size': 256, 'interpolation': 'bilinear', 'channel_order': 'RGB', "
        f"'method': 'exact', {versions}, "
        "'crop_pct': 0.875, 'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225)}"
    )
    assert repr(Preprocess(channel_order="BGR").pixel_key_parts()) == (
        "{'image_size': 224, 'resize_size': 256, 'interpolation': 'bilinear', 'channel_order': 'BGR', "
        f"'method': 'exact', {versions}}}"
    )


@pytest.mark.parametrize("name, message", [
    ("no_such_model_anywhere", "publishes no pretrained data config"),
    (f"{MODEL_NAME}.no_such_tag", "Invalid pretrained tag"),
])
def test_an_unknown_model_is_one_clear_error(name, message):
    with pytest.raises(ValidateError, match=message):
        model_data_config(name)


def test_importing_the_module_does_not_import_timm():
    import subprocess
    import sys

    code = "import sys, res2net_validate.data.preprocess; print('timm' in sys.modules, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
