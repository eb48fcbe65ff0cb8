"""The thresholds YAML schema: good files load, malformed ones are one clear error."""

import pytest

from res2net_validate.errors import ValidateError
from res2net_validate.cards import thresholds_of
from res2net_validate.thresholds import load_thresholds


def write(tmp_path, text):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path


def test_the_shipped_card_thresholds_load(request):
    shipped = request.config.rootpath / "thresholds"  # the defaults, shipped inside the package too
    thresholds = thresholds_of(shipped / "res2net50.yaml")  # a card: its results table
    assert thresholds.accuracy_for("fp16").top1 == 77.92
    assert thresholds.accuracy_for("int8").top5 == 93.62
    assert thresholds.fps_floor("int8", "MR-V100 (16 GB)") == ("MR-V100", 1933.74)
    assert thresholds.fps_floor("int8", "NVIDIA H100") is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("accuracy: [", "line 1, column 12: not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("accuracy: {fp16: {top1: 1, top5: 2}}\nthreshold: 3\n", "top level: unknown key 'threshold'"),
        ("accuracy: {}\n", "accuracy: expected a mapping of precisions"),
        ("accuracy: {bf16: {top1: 1, top5: 2}}\n", "accuracy.bf16: this key is not allowed here; expected a precision"),
        ("accuracy: {fp16: {top1: 1}}\n", "accuracy.fp16: 'top5' is missing; expected exactly {top1"),
        ("accuracy: {fp16: {top1: 177, top5: 2}}\n", "accuracy.fp16.top1: expected a percentage"),
        ("accuracy: {fp16: {top1: '77', top5: 2}}\n", "accuracy.fp16.top1: expected a percentage"),
        ("accuracy: {fp16: {top1: 1, top5: 2}}\nperformance: {V100: {fp16: -3}}\n",
         "performance.V100.fp16: expected a positive finite FPS number"),
        ("accuracy: {fp16: {top1: 1, top5: 2}}\nbatch_size: 0\n", "batch_size: expected a positive integer"),
    ],
)
def test_malformed_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValidateError) as error:
        load_thresholds(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(ValidateError, match="not found. Pass --thresholds FILE"):
        load_thresholds(tmp_path / "nope.yaml")


def test_a_malformed_file_stops_the_run_before_any_work(suite):
    bad = suite.path / "thresholds" / "bad.yaml"
    bad.write_text("accuracy:\n  int8: {top1: 77.8}\n")
    result = suite.run("--embedded", f"--thresholds={bad}", "-m", "accuracy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*thresholds file {bad}: accuracy.int8: 'top5' is missing; expected exactly {{top1*"])


def test_every_shipped_thresholds_file_is_package_data(request):
    """pip install (not -e) copies only what pyproject's package-data names: the defaults must be in it."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")
    root = request.config.rootpath
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["res2net_validate._thresholds"]  # the package pyproject.toml maps onto thresholds/
    files = [p for p in (root / "thresholds").rglob("*") if p.is_file()]
    shipped = sorted(p.relative_to(root / "thresholds").as_posix() for p in files)
    assert {"mobilenet_v2.yaml", "res2net50.yaml", "resnet50.yaml"} <= set(shipped)
    left_out = [name for name in shipped if not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)]
    assert not left_out, f"not shipped by pyproject.toml's package-data {patterns}: {left_out}"
