"""The suite on data the user brings: a checkpoint file and an ImageNet-layout folder."""

import pytest
from conftest import ZERO_THRESHOLDS

from res2net_validate.data.sample import write_sample_dataset


def sample_with_a_truncated_image(root):
    pairs = write_sample_dataset(root, count=12, layout="card", size=(240, 320))
    name = pairs[3][0]
    victim = next(root.rglob(name))
    victim.write_bytes(victim.read_bytes()[:200])
    return name


def test_a_truncated_image_is_an_error_naming_it_or_skipped_and_counted_when_asked(suite, random_weights,
                                                                                  random_weights_export, tmp_path):
    data = tmp_path / "val"
    bad_name = sample_with_a_truncated_image(data)
    thresholds = suite.path / "thresholds" / "zero.yaml"
    thresholds.write_text(ZERO_THRESHOLDS)
    common = ("-m", "accuracy", "--precision=fp32", f"--weights={random_weights}", f"--dataset-dir={data}",
              f"--thresholds={thresholds}", "--calib-count=2", "--batch-size=5")

    strict = suite.run(*common, cache=random_weights_export.cache)  # FP32 graph exported there
    strict.assert_outcomes(failed=1, passed=1)  # the floors need the images; the precision proof does not
    strict.stdout.fnmatch_lines([f"*{bad_name}*--skip-bad-images*"])
    assert "Traceback" not in strict.stdout.str()

    lenient = suite.run(*common, "--skip-bad-images", cache=random_weights_export.cache)
    lenient.assert_outcomes(passed=2)
    lenient.stdout.fnmatch_lines([
        "Res2Net50 | 5 * | FP32 *",
        f"note: WARNING: 1 undecodable images skipped and counted as wrong (--skip-bad-images): {bad_name}",
    ])


def test_under_xdist_workers_share_one_build_and_the_controller_reports_every_row(suite, random_weights,
                                                                                  tmp_path):
    data = tmp_path / "val"
    write_sample_dataset(data, count=10, layout="imagefolder", size=(240, 320), seed=1)
    thresholds = suite.path / "thresholds" / "zero.yaml"
    thresholds.write_text(ZERO_THRESHOLDS)
    cache = tmp_path / "cache"  # fresh, so both workers race for the same builds
    result = suite.run("-n", "2", "-m", "accuracy", "--precision=fp32,fp16", f"--weights={random_weights}",
                       f"--dataset-dir={data}", f"--thresholds={thresholds}", "--calib-count=2",
                       f"--checkpoints-dir={cache}", cache=False, in_process=False)
    result.assert_outcomes(passed=4, skipped=1)  # floors and proofs; zero.yaml sets no max_drop_vs_fp32
    result.stdout.fnmatch_lines(["Res2Net50 | 32 * | FP32 *", "Res2Net50 | 32 * | FP16 *"])
    for kind in ("onnx-fp32", "onnx-fp16", "images"):
        manifests = list((cache / kind).glob("*.json"))
        assert len(manifests) == 1, f"{kind}: {len(manifests)} entries"
    setup_notes = [line for line in result.outlines if line.startswith("note: setup before the first scored batch")]
    # One per worker that scored (a worker may get only precision proofs, which score nothing).
    assert 1 <= len(setup_notes) <= 2, setup_notes
    builders = [note for note in setup_notes if "onnx-fp32" in note.split("built:")[1]]
    assert len(builders) <= 1, f"the FP32 export was built by {len(builders)} workers: {setup_notes}"


def test_weights_alone_give_fps_and_int8_fps_needs_only_calibration_images(suite, random_weights,
                                                                          random_weights_export, tmp_path):
    common = ("--precision=fp16,int8", f"--weights={random_weights}", "--batch-size=2", "--perf-rounds=1",
              "--perf-warmup=0", "-rs")
    result = suite.run(*common, cache=random_weights_export.cache)  # FP16 graph converted there
    result.assert_outcomes(passed=2, skipped=6)  # fp16's FPS and precision proof; nothing to score
    result.stdout.fnmatch_lines([
        f"res2net_validate *: weights {random_weights}, no dataset: FPS only, accuracy tests skip",
        "Res2Net50 | 2 * | FP16 *",
        "SKIPPED*no ImageNet val: pass --dataset-dir DIR or set DATASETS_DIR",
        "SKIPPED*INT8 needs calibration images: pass --calib-dir DIR, or --dataset-dir DIR*",
    ])
    assert "Res2Net50 | 2 * | INT8" not in result.stdout.str()

    calib = tmp_path / "calib"
    pairs = write_sample_dataset(calib, count=3, layout="imagefolder", size=(240, 320), seed=2)
    listing = tmp_path / "cal_image_list.txt"
    listing.write_text("".join(f"{next(calib.rglob(name)).relative_to(calib)}\n" for name, _ in pairs[:2]))
    with_calibration = suite.run(*common, "-m", "performance", f"--calib-dir={calib}", f"--calib-list={listing}",
                                 cache=random_weights_export.cache)
    with_calibration.assert_outcomes(passed=4)  # FPS and precision proofs of fp16 and int8
    with_calibration.stdout.fnmatch_lines([
        "Res2Net50 | 2 * | INT8 *",
        "note: int8 Q/DQ graph, * calibration on 2 images listed in --calib-list from --calib-dir*"])


def test_a_dataset_dir_without_a_layout_or_too_few_images_is_a_usage_error_before_any_export(suite, random_weights,
                                                                                              tmp_path):
    from PIL import Image

    flat = tmp_path / "flat"  # unlabelled JPEGs with names of no layout
    flat.mkdir()
    Image.new("RGB", (64, 48)).save(flat / "holiday.jpg")
    (tmp_path / "empty").mkdir()
    data = tmp_path / "val"
    write_sample_dataset(data, count=12, layout="card", size=(240, 320))
    common = ("-m", "accuracy", "--precision=fp32", f"--weights={random_weights}", "--calib-count=2")
    for dataset, extra, expected in (
            (flat, (), f"ERROR: no ImageNet validation layout found in {flat}: expected one of val_map.txt*"),
            (tmp_path / "empty", (), "ERROR: no ImageNet validation layout found in *empty: expected*"),
            (data, ("--num-images=50",), "ERROR: --num-images 50: only 10 images are available to score")):
        result = suite.run(*common, f"--dataset-dir={dataset}", *extra)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
        result.stderr.fnmatch_lines([expected])
        output = result.stdout.str() + result.stderr.str()
        assert "export" not in output and "Traceback" not in output and "collected" not in output
