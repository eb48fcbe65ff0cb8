"""Option precedence (CLI > env > ini > default), the report header, markers."""

import pytest


def ini_with(suite, **values):
    text = (suite.path / "pytest.ini").read_text()
    extra = "".join(f"res2net_{name} = {value}\n" for name, value in values.items())
    (suite.path / "pytest.ini").write_text(text.replace("[pytest]\n", "[pytest]\n" + extra, 1))


def header_value(result, name):
    line = next(line for line in result.outlines if f" {name}=" in line or line.lstrip().startswith(f"{name}="))
    return line.split(f"{name}=", 1)[1].split(")")[0] + ")"


def test_defaults_are_shown_with_their_source(suite):
    result = suite.run("--co")
    assert header_value(result, "precision") == "fp16,int8 (default)"
    assert header_value(result, "batch-size") == "32 (default)"
    assert header_value(result, "backend") == "auto (default)"


def test_ini_beats_default(suite):
    ini_with(suite, batch_size=8, precision="int8")
    result = suite.run("--co")
    assert header_value(result, "batch-size") == "8 (ini res2net_batch_size)"
    assert header_value(result, "precision") == "int8 (ini res2net_precision)"


def test_env_beats_ini(suite, monkeypatch):
    ini_with(suite, batch_size=8)
    monkeypatch.setenv("RES2NET_BATCH_SIZE", "16")
    monkeypatch.setenv("DATASETS_DIR", str(suite.path))
    monkeypatch.setenv("RES2NET_CALIB_PERCENTILE", "99.99")
    result = suite.run("--co")
    assert header_value(result, "calib-percentile") == "99.99 (env RES2NET_CALIB_PERCENTILE)"
    assert header_value(result, "batch-size") == "16 (env RES2NET_BATCH_SIZE)"
    assert header_value(result, "dataset-dir") == f"{suite.path} (env DATASETS_DIR)"


def test_cli_beats_env_and_ini(suite, monkeypatch):
    ini_with(suite, batch_size=8, precision="int8")
    monkeypatch.setenv("RES2NET_BATCH_SIZE", "16")
    monkeypatch.setenv("RES2NET_PRECISION", "fp32")
    result = suite.run("--co", "--batch-size", "4", "--precision", "fp16", "--precision", "fp32")
    assert header_value(result, "batch-size") == "4 (--batch-size)"
    assert header_value(result, "precision") == "fp16,fp32 (--precision)"


def test_precisions_parametrize_the_tests(suite):
    result = suite.run("--co", "--precision", "fp32,int8")
    result.stdout.fnmatch_lines(["*test_top1_top5_meet_thresholds[[]fp32[]]*",
                                 "*test_top1_top5_meet_thresholds[[]int8[]]*"])
    assert "fp16]" not in result.stdout.str()


@pytest.mark.parametrize(
    "args, env, expected",
    [
        (("--batch-size", "zero"), {}, "--batch-size='zero' (from --batch-size)"),
        ((), {"RES2NET_PRECISION": "int4"}, "--precision='int4' (from env RES2NET_PRECISION): expected one or more"),
        (("--backend", "tvm"), {}, "--backend='tvm' (from --backend): expected one of auto, onnxruntime"),
        (("--weights=/nonexistent/w.pth",), {}, "--weights /nonexistent/w.pth (from --weights): not found"),
        (("--calib-list=/nonexistent/list.txt",), {}, "--calib-list /nonexistent/list.txt (from --calib-list): "
                                                       "not found; expected a list file"),
        (("--calib-percentile", "100.5"), {}, "--calib-percentile='100.5' (from --calib-percentile): expected a "
                                               "percentile in (0, 100]"),
    ],
)
def test_bad_option_values_are_one_clear_usage_error(suite, monkeypatch, args, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = suite.run("--co", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{expected}*"])
    assert "Traceback" not in result.stderr.str()


def test_markers_are_registered_and_strict(suite):
    (suite.path / "tests" / "test_typo.py").write_text(
        "import pytest\n\n@pytest.mark.acuracy\ndef test_x():\n    pass\n")
    result = suite.run("--co", "tests/test_typo.py")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*'acuracy' not found in `markers` configuration option*"])


def test_marker_selection(suite):
    result = suite.run("--co", "-m", "performance")
    # FPS and the precision proofs of fp16 and int8; baselines are deselected without --compare-baseline
    result.stdout.fnmatch_lines(["*test_precision_is_proven[[]fp16[]]*", "*test_fps[[]int8[]]*",
                                 "*4/10 tests collected (6 deselected)*"])
    assert "test_top1_top5" not in result.stdout.str()


def test_without_weights_or_data_the_real_tests_skip_saying_what_to_pass(suite):
    result = suite.run("-m", "accuracy", "-rs")
    result.assert_outcomes(skipped=6)  # floors, drops vs FP32, precision proofs
    result.stdout.fnmatch_lines(["*no weights: pass --weights FILE (res2net50_14w_8s-6527dddc.pth)*--embedded*"])


def test_a_spaced_path_value_that_moves_the_rootdir_is_a_clear_error(suite, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "w.pth"
    elsewhere.write_bytes(b"")
    result = suite.run("--co", "--weights", str(elsewhere))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ignored*pytest.ini*Write the value with '=': --weights=VALUE*"])


def test_a_batch_that_cannot_fit_in_memory_is_a_usage_error_naming_the_option(suite):
    result = suite.run("--co", "--embedded", "--batch-size=100000000")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--batch-size 100000000 (from --batch-size): needs about * GiB of memory "
                                 "(13 MiB per image), but * GiB are available; use --batch-size * or less"])


def test_a_precision_without_a_target_fails_before_scoring_unless_allowed(suite):
    only_fp16 = suite.path / "thresholds" / "fp16-only.yaml"
    only_fp16.write_text("accuracy:\n  fp16: {top1: 0, top5: 0}\n")
    args = ("-m", "accuracy", "--embedded", "--precision=fp32", f"--thresholds={only_fp16}", "--num-images=32",
            "-k", "top1_top5")
    result = suite.run(*args)  # fails before scoring
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{only_fp16} has no accuracy target for fp32: add accuracy.fp32 to it, or pass "
                                 "--allow-untargeted to measure it without a gate"])
    assert "score fp32" not in result.stdout.str() + result.stderr.str()
    allowed = suite.run(*args, "--allow-untargeted")
    allowed.assert_outcomes(passed=1)
    allowed.stdout.fnmatch_lines(["Res2Net50 | 32 * | FP32 *"])


@pytest.mark.parametrize("args, expected", [
    (("--backend=tensorrt", "--precision=fp16"), "--backend tensorrt (from --backend) cannot run fp16: needs TensorRT"),
    (("--backend=torch", "--precision=int8"), "--backend torch (from --backend) cannot run int8: int8 is not "
                                              "supported by the torch backend*use --backend onnxruntime*"),
])
def test_a_named_backend_that_cannot_run_a_precision_refuses_the_run_instead_of_skipping(suite, args, expected):
    # A nightly that names its backend must not go green on a runner where that backend broke.
    import importlib.util

    if "tensorrt" in args[0] and importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here, so fp16 may run")  # torch never runs int8
    result = suite.run("--embedded", "--num-images=32", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {expected}*"])
    assert "skipped" not in result.stdout.str() and "Traceback" not in result.stderr.str()


def test_the_spaced_value_advice_names_only_path_options_and_works_when_followed(suite, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    result = suite.run("-m", "accuracy", "--embedded", "--precision", "fp16", "--checkpoints-dir", str(elsewhere),
                       cache=False)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # --embedded is a flag (--embedded=1 is an argparse error) and fp16 is no path: neither is named
    result.stderr.fnmatch_lines(["*ignored*pytest.ini*Write the value with '=': --checkpoints-dir=VALUE (or set it "
                                 "in the environment)."])
    followed = suite.run("--co", "-m", "accuracy", "--embedded", "--precision", "fp16",
                         f"--checkpoints-dir={elsewhere}", cache=False)
    assert followed.ret == pytest.ExitCode.OK
