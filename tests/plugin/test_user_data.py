"""The suite on data the user brings: a checkpoint file and an ImageNet-layout folder."""

from conftest import ZERO_THRESHOLDS

from res2net_validate.dataset import write_sample_dataset


def sample_with_a_truncated_image(root):
    pairs = write_sample_dataset(root, count=12, layout="card", size=(240, 320))
    name = pairs[3][0]
    victim = next(root.rglob(name))
    victim.write_bytes(victim.read_bytes()[:200])
    return name


def test_a_truncated_image_is_an_error_naming_it_or_skipped_and_counted_when_asked(suite, random_weights,
                                                                                  tmp_path):
    data = tmp_path / "val"
    bad_name = sample_with_a_truncated_image(data)
    thresholds = suite.path / "thresholds" / "zero.yaml"
    thresholds.write_text(ZERO_THRESHOLDS)
    common = ("-m", "accuracy", "--precision=fp32", f"--weights={random_weights}", f"--dataset-dir={data}",
              f"--thresholds={thresholds}", "--calib-count=2", "--batch-size=5")

    strict = suite.run(*common)
    strict.assert_outcomes(errors=1)
    strict.stdout.fnmatch_lines([f"*{bad_name}*--skip-bad-images*"])
    assert "Traceback" not in strict.stdout.str()

    lenient = suite.run(*common, "--skip-bad-images")
    lenient.assert_outcomes(passed=1)
    lenient.stdout.fnmatch_lines([
        "Res2Net50 | 5 * | FP32 *",
        f"note: WARNING: 1 undecodable images skipped and counted as wrong (--skip-bad-images): {bad_name}",
    ])
