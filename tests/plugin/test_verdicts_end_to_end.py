"""The verdicts on the embedded default, through pytester: sampled runs, relative gates against FP32,
the precision proof and accuracy baselines each pass a healthy pipeline and fail a broken one."""

import json

import pytest

from test_embedded_end_to_end import ZERO_CALIBRATION_CONFTEST

# A data-path bug: the scored pixels reach the model in BGR order, with the preprocessing settings unchanged.
BGR_PIXELS_CONFTEST = '''
import dataclasses
import numpy as np
import pytest

@pytest.fixture(scope="session")
def res2net_scored_images(res2net_session, res2net_source, res2net_preprocess):
    real = res2net_session.inputs.scored_images(res2net_preprocess)
    return dataclasses.replace(real, images=np.ascontiguousarray(np.asarray(real.images)[:, ::-1]), cache_path=None)
'''

FP32_AS_FP16_CONFTEST = '''
import pytest

class FP32AsFP16:
    """Hands the FP32 graph to anyone asking for the FP16 one (a broken converter)."""

    def __init__(self, artifacts):
        self._artifacts = artifacts

    def graph(self, precision, target="onnxruntime"):
        return self._artifacts.graph("fp32" if precision == "fp16" else precision, target)

    def __getattr__(self, name):
        return getattr(self._artifacts, name)

@pytest.fixture(scope="session")
def res2net_artifacts(res2net_session, res2net_calibration_images, res2net_preprocess):
    return FP32AsFP16(res2net_session.pipeline.artifacts(res2net_calibration_images, res2net_preprocess))
'''


def _verdicts(path):
    return [v for row in json.loads(path.read_text())["rows"] for v in row["verdicts"]]


def test_a_healthy_64_image_run_passes_every_gate_and_reuses_its_cached_fp32_reference(suite):
    args = ("-m", "accuracy", "--embedded", "--precision=fp16,int8", "--num-images=64", "--report-json=out/r.json")
    result = suite.run(*args)
    result.assert_outcomes(passed=6)  # floors, drops vs FP32 and precision proofs of fp16 and int8
    result.stdout.fnmatch_lines([
        "PASS (*) absolute fp16: Top-1 *% on 64 of 256 images vs floor 91.00%: *; p=* raw, * adjusted for the "
        "run's 8 sampled verdicts (Bonferroni) vs alpha 0.05; detects a shortfall of * points with power 80%",
        "PASS (*) relative_to_fp32 int8: Top-1 drop vs fp32 * points (* of a population of 256) vs allowance 6.00*",
        "PASS precision int8: all * compute layers proven (the optimized model ONNX Runtime executes*",
        "note: fp32 reference for relative gates: * on the same 64 images (fp32 is not under test*",
    ])
    verdicts = _verdicts(suite.path / "out" / "r.json")
    assert {(v["kind"], v["precision"], v["metric"]) for v in verdicts} >= {
        ("absolute", "fp16", "top1"), ("relative_to_fp32", "int8", "top5"), ("precision", "int8", "precision")}
    floor = next(v for v in verdicts if v["kind"] == "absolute" and v["metric"] == "top1")
    # 320 generated images less the 64 that calibrate INT8: the population the verdicts speak for
    assert floor["images"] == 64 and floor["population"] == 256 and floor["alpha"] == 0.05
    assert floor["verdicts_in_run"] == 8 and floor["level"] == pytest.approx(0.05 / 8)
    assert floor["interval"][0] <= floor["measured"] <= floor["interval"][1] and floor["p_adjusted"] > 0.05
    assert floor["state"] in ("shown", "not shown")

    again = suite.run(*args)
    again.assert_outcomes(passed=6)
    again.stdout.fnmatch_lines(["note: fp32 reference for relative gates: reused from the cache*"])


def test_int8_calibrated_on_blank_images_fails_the_relative_gate_with_its_floor_at_zero(suite):
    (suite.path / "conftest.py").write_text(ZERO_CALIBRATION_CONFTEST)
    lenient = suite.path / "thresholds" / "int8-floor-zero.yaml"
    lenient.write_text("accuracy:\n  int8: {top1: 0, top5: 0}\nmax_drop_vs_fp32:\n  int8: {top1: 6.0, top5: 2.0}\n")
    result = suite.run("-m", "accuracy", "--embedded", "--precision=int8", "--num-images=64",
                       f"--thresholds={lenient}", "-k", "not precision")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*Top-1 drop vs fp32 +* points*vs allowance 6.00: MISSED - the drop is at least * points (one-sided *",
        "FAILED *test_drop_vs_fp32_within_allowance[[]int8[]]*"])


def test_an_fp16_graph_that_is_really_fp32_fails_the_precision_test_listing_layers(suite):
    (suite.path / "conftest.py").write_text(FP32_AS_FP16_CONFTEST)
    result = suite.run("-m", "accuracy", "--embedded", "--precision=fp16", "-k", "precision")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*fp16 on onnxruntime: * of * compute layers are not fp16 (the optimized model ONNX Runtime executes*): "
        "* (Conv) [[]fp32[]]*",
        "FAILED *test_precision_is_proven[[]fp16[]]*"])


def test_a_saved_baseline_passes_a_healthy_rerun_and_fails_a_bgr_run_listing_flipped_images(suite):
    baseline = suite.path / "nightly" / "baseline.json"
    common = ("-m", "accuracy", "--embedded", "--precision=fp32", "--num-images=64")
    saved = suite.run(*common, f"--save-baseline={baseline}")
    saved.assert_outcomes(passed=2)
    saved.stdout.fnmatch_lines([f"baseline (fp32): {baseline}"])
    document = json.loads(baseline.read_text())
    assert len(document["precisions"]["fp32"]["images"]) == 64
    assert document["identity"]["dataset"]["images"] == 320

    healthy = suite.run(*common, f"--compare-baseline={baseline}", "-k", "baseline")
    healthy.assert_outcomes(passed=1)
    healthy.stdout.fnmatch_lines(["PASS (*) baseline fp32: 64 images shared with the baseline (of 64 scored): Top-1 "
                                  "drop vs baseline +0.00 points (0 images lost, 0 gained of 64*"])

    (suite.path / "conftest.py").write_text(BGR_PIXELS_CONFTEST)
    swapped = suite.run(*common, f"--compare-baseline={baseline}", "-k", "baseline", "--report-json=out/r.json")
    swapped.assert_outcomes(failed=1)
    swapped.stdout.fnmatch_lines(["*64 images shared with the baseline*Top-1 drop vs baseline +* points*MISSED*. "
                                  "Right->wrong: ILSVRC2012_val_*.JPEG, *Classes that lost most: n*"])
    top1 = next(v for v in _verdicts(suite.path / "out" / "r.json") if v["metric"] == "top1")
    assert len(top1["right_to_wrong"]) == top1["lost"] > 20 and not top1["passed"]


def test_a_baseline_of_other_preprocessing_is_one_clear_error(suite, tmp_path):
    baseline = tmp_path / "baseline.json"
    suite.run("-m", "accuracy", "--embedded", "--precision=fp32", "--num-images=32", f"--save-baseline={baseline}",
              "-k", "top1").assert_outcomes(passed=1)
    # the differing key is named (not cut off), and the run stops before any image is preprocessed or scored
    fast = suite.run("-m", "accuracy", "--embedded", "--precision=fp32", "--num-images=32", "--preprocess=fast",
                     f"--compare-baseline={baseline}")
    assert fast.ret == pytest.ExitCode.USAGE_ERROR
    fast.stderr.fnmatch_lines([f"ERROR: --compare-baseline {baseline}: made on another preprocessing than this run "
                               "(method: exact (baseline) vs fast (this run)); compare only runs *"])
    output = fast.stdout.str() + fast.stderr.str()
    assert "preprocess val" not in output and "passed" not in output and "Traceback" not in output

    document = json.loads(baseline.read_text())
    document["identity"]["preprocess"]["crop_pct"] = 0.95
    baseline.write_text(json.dumps(document))
    result = suite.run("-m", "accuracy", "--embedded", "--precision=fp32", "--num-images=32",
                       f"--compare-baseline={baseline}", "-k", "baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--compare-baseline {baseline}: made on another preprocessing than this run "
                                 "(crop_pct: 0.95 (baseline) vs 0.875 (this run)); *"])
