"""Verdict records, the thresholds' relative section, predictions and baseline files."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from res2net_validate.backends.base import PrecisionProof
from res2net_validate.errors import ValidateError
from res2net_validate.evaluate import top_classes
from res2net_validate.predictions import Predictions, align, baseline_entry, read_baseline, write_baseline
from res2net_validate.thresholds import load_thresholds
from res2net_validate.verdicts import check_fps, check_precision


def test_fps_floors_apply_only_at_the_thresholds_batch_size():
    applied = check_fps("fp16", 900.0, 921.37, "MR-V100", 32, 32, "t.yaml")
    assert not applied.passed and "900.00 FPS at batch 32 < floor 921.37 for MR-V100 in t.yaml" in applied.message
    skipped = check_fps("fp16", 900.0, 921.37, "MR-V100", 8, 32, "t.yaml")
    assert skipped.passed and "floor 921.37 for MR-V100 not applied - t.yaml sets floors at batch_size 32" in (
        skipped.message)
    assert skipped.as_dict()["floor_not_applied"] == 921.37


def test_precision_verdict_lists_offending_layers_and_refuses_an_empty_proof():
    bad = check_precision(PrecisionProof("fp16", "what runs", 3, ["conv1 (Conv) [fp32]", "fc (Gemm) [fp32]"]))
    assert not bad.passed and "2 of 3 compute layers are not fp16 (what runs): conv1 (Conv) [fp32]; fc" in (
        bad.message)
    empty = check_precision(PrecisionProof("int8", "what runs", 0, unproven="no layer information"))
    assert not empty.passed and "could not be proven" in empty.message
    assert check_precision(PrecisionProof("int8", "what runs", 5)).passed


def _thresholds(tmp_path, text):
    path = tmp_path / "t.yaml"
    path.write_text("accuracy:\n  fp16: {top1: 1, top5: 1}\n" + text)
    return path


def test_max_drop_section_is_parsed_and_checked(tmp_path):
    ok = load_thresholds(_thresholds(tmp_path, "max_drop_vs_fp32:\n  int8: {top1: 0.78, top5: 0.5}\n"))
    assert ok.drop_allowance("int8").top1 == 0.78 and ok.drop_allowance("fp16") is None
    for text, message in (("max_drop_vs_fp32:\n  fp32: {top1: 1, top5: 1}\n", "fp32 is the reference"),
                          ("max_drop_vs_fp32:\n  int4: {top1: 1, top5: 1}\n", "not allowed here; expected fp16 or int8"),
                          ("max_drop_vs_fp32:\n  int8: {top1: 1}\n", "expected exactly {top1"),
                          ("max_drop_vs_fp32:\n  int8: {top1: -1, top5: 1}\n", "between 0 and 100"),
                          ("max_drop_vs_fp32: 3\n", "mapping of fp16/int8")):
        with pytest.raises(ValidateError, match=message):
            load_thresholds(_thresholds(tmp_path, text))


def _images(names, labels, skipped=()):
    return SimpleNamespace(names=tuple(names), labels=np.array(labels), skipped=tuple(skipped))


def test_predictions_count_skipped_images_wrong_and_align_by_name():
    logits = np.zeros((3, 10), np.float32)
    logits[0, 4], logits[1, 7], logits[2, 1] = 3, 2, 1
    assert top_classes(logits)[0, 0] == 4
    tonight = Predictions.from_top5("fp32", top_classes(logits), _images(["a", "b", "c"], [4, 0, 1], skipped=["d"]))
    assert tonight.correct("top1").tolist() == [True, False, True, False]
    assert tonight.correct("top5").tolist()[3] is False
    last_night = Predictions("fp32", ("c", "d", "x"), np.array([1, 2, 3]), np.tile(np.arange(5), (3, 1)))
    reference, candidate = align(last_night, tonight)
    assert candidate.names == reference.names == ("c", "d")
    assert reference.correct("top1").tolist() == [False, False] and reference.correct("top5").tolist() == [True, True]
    assert candidate.correct("top1").tolist() == [True, False]  # "d" was skipped tonight: wrong
    with pytest.raises(ValidateError, match="no image in common"):
        align(Predictions("fp32", ("z",), np.array([1]), np.zeros((1, 5), np.int32)), tonight)


def test_baseline_files_round_trip_and_bad_ones_are_one_clear_error(tmp_path):
    predictions = Predictions("int8", ("a", "b"), np.array([1, 2]), np.array([[1, 0, 0, 0, 0], [3, 2, 0, 0, 0]]))
    path = tmp_path / "nightly" / "base.json"
    identity = {"dataset": {"fingerprint": "d"}, "preprocess": {"crop_pct": 0.875}}
    write_baseline(path, identity, {"int8": baseline_entry(predictions, "g", "onnxruntime", "CPU")})
    baseline = read_baseline(path)
    assert baseline.predictions("int8").correct("top5").tolist() == [True, True]
    baseline.check_comparable(identity)
    with pytest.raises(ValidateError, match="made on another dataset"):
        baseline.check_comparable({**identity, "dataset": {"fingerprint": "other"}})
    # a baseline of another card's model is no baseline (one saved before cards holds res2net50_14w_8s: it matches)
    res2net = {**identity, "model_name": "res2net50_14w_8s"}
    write_baseline(path, res2net, {"int8": baseline_entry(predictions, "g", "onnxruntime", "CPU")})
    read_baseline(path).check_comparable(res2net)
    with pytest.raises(ValidateError, match=r"made on another model than this run \(.*res2net50_14w_8s"):
        read_baseline(path).check_comparable({**identity, "model_name": "torchvision:mobilenet_v2:x"})
    write_baseline(path, identity, {"int8": baseline_entry(predictions, "g", "onnxruntime", "CPU")})
    with pytest.raises(ValidateError, match="has no fp16 predictions .it holds int8.; save a baseline with"):
        baseline.predictions("fp16")
    (tmp_path / "junk.json").write_text(json.dumps({"format": "something else"}))
    for bad, message in ((tmp_path / "missing.json", "not found; write one with --save-baseline"),
                         (tmp_path / "junk.json", "not a res2net_validate-baseline-v1 file")):
        with pytest.raises(ValidateError, match=message):
            read_baseline(bad)


def test_top_classes_match_a_full_sort_in_every_column():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((64, 1000)).astype(np.float32)
    top = top_classes(logits)
    assert np.array_equal(top, np.argsort(-logits, axis=1, kind="stable")[:, :5])
    from res2net_validate.evaluate import check_top_classes

    check_top_classes(top, logits)
    for broken, message in ((np.repeat(top[:, :1], 5, axis=1), "repeat a class"), (top[:, :1], "expected 5 classes"),
                            (top[:, ::-1], "not the best ones in order"),
                            (np.concatenate([top[:, :4], np.argsort(logits, axis=1)[:, :1]], axis=1),
                             "outside the top classes")):
        with pytest.raises(RuntimeError, match=message):
            check_top_classes(broken, logits)


def test_a_baseline_sharing_too_few_images_or_edited_labels_is_one_clear_error():
    from res2net_validate.predictions import against_baseline

    top5 = np.tile(np.arange(5, dtype=np.int32), (10, 1))
    tonight = Predictions("fp16", tuple(f"i{n}" for n in range(10)), np.arange(10) % 3, top5)
    few = Predictions("fp16", ("i0", "i1"), np.array([0, 1]), top5[:2])
    with pytest.raises(ValidateError, match=r"b.json: shares 2 of the 10 images this run scored \(at least 90%"):
        against_baseline(few, tonight, "b.json")
    edited = Predictions("fp16", tonight.names, np.where(np.arange(10) == 4, 2, tonight.labels), top5)
    with pytest.raises(ValidateError, match=r"1 of the 10 shared images have other labels .*i4: 2 in the baseline, 1"):
        against_baseline(edited, tonight, "b.json")
    before, now = against_baseline(tonight, tonight, "b.json")
    assert before.names == now.names == tonight.names


def test_a_baseline_label_edited_to_minus_one_is_refused(tmp_path):
    predictions = Predictions("int8", ("a", "b"), np.array([1, 2]), np.array([[1, 0, 0, 0, 0], [3, 2, 0, 0, 0]]))
    path = tmp_path / "base.json"
    write_baseline(path, {}, {"int8": baseline_entry(predictions, "g", "onnxruntime", "CPU")})
    document = json.loads(path.read_text())
    document["precisions"]["int8"]["labels"][1] = -1
    path.write_text(json.dumps(document))
    with pytest.raises(ValidateError, match="int8 label of b is -1, not a class"):
        read_baseline(path).predictions("int8")


def test_subset_seed_picks_other_images_and_never_moves_the_calibration_images():
    from res2net_validate.data.selection import split_images

    from res2net_validate.data.layouts import LabeledImage
    from pathlib import Path

    images = [LabeledImage(Path(f"{i:05d}.JPEG"), i % 10) for i in range(2_000)]

    def split(seed, **kw):
        return split_images(images, num_images=100, calib_count=50, calib_dir=None, calib_on_scored=False,
                            subset_seed=seed, **kw)

    fixed, again, other = split(0), split(0), split(7)
    assert fixed.scored == again.scored and fixed.calibration == other.calibration
    assert len(set(fixed.scored) & set(other.scored)) < 20  # about 100 * 100 / 1950 by chance
    assert not set(other.scored) & set(other.calibration) and other.calibration_held_out == 50
    assert "--subset-seed 7" in other.notes[-1] and "100 of 1950 images" in other.notes[-1]
    # seed 0 keeps the subset of earlier versions: the first 100 of the seed-0 order, calibration removed
    order = np.random.default_rng(0).permutation(2_000)
    carved = set(sorted(order[:50]))
    assert fixed.scored == tuple(images[i] for i in sorted([i for i in order if i not in carved][:100]))


def test_a_random_subset_seed_is_drawn_once_and_shared_with_xdist_workers(monkeypatch):
    from res2net_validate import settings

    monkeypatch.delenv(settings.DRAWN_SEED_ENV, raising=False)
    first = settings._seed("random")
    assert settings._seed("random") == first and int(settings.os.environ[settings.DRAWN_SEED_ENV]) == first
    assert settings._seed("12") == 12
    with pytest.raises(ValueError):
        settings._seed("-1")
