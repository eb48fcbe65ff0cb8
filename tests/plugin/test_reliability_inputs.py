"""Inputs that used to pass silently or fail late: --embedded with other sources, unwritable outputs,
a thresholds file for another model, a rootdir without thresholds/ (the packaged defaults apply) or an
installation without them, PYTEST_ADDOPTS --precision."""

from __future__ import annotations

import re

import pytest


def usage_error(result, *expected):
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([f"*{line}*" for line in expected])
    assert "Traceback" not in result.stderr.str()


def test_embedded_from_the_environment_with_weights_and_data_is_a_usage_error(suite, monkeypatch, tmp_path):
    random_weights = tmp_path / "any-checkpoint.pth"  # never read: the clash is refused first
    random_weights.write_bytes(b"x")
    monkeypatch.setenv("RES2NET_EMBEDDED", "1")
    monkeypatch.setenv("DATASETS_DIR", str(tmp_path))
    usage_error(suite.run("--co", f"--weights={random_weights}"),
                f"--embedded (from env RES2NET_EMBEDDED) runs on its own generated images and stand-in checkpoint, "
                f"but --weights {random_weights} (from --weights) and --dataset-dir {tmp_path} (from env DATASETS_DIR) "
                "were also given: use one or the other")


@pytest.mark.parametrize("option, problem", [("weights", "is a directory; expected a checkpoint file"),
                                             ("dataset-dir", "is a file; expected the ImageNet validation folder")])
def test_a_path_of_the_wrong_kind_says_so(suite, tmp_path, option, problem):
    path = tmp_path if option == "weights" else tmp_path / "file.txt"
    path.write_text("x") if option != "weights" else None
    usage_error(suite.run("--co", f"--{option}={path}"),
                f"--{option} {path} (from --{option}): {problem}")


@pytest.mark.parametrize("option", ["--report-json", "--benchmark-json", "--save-baseline", "--report-dir"])
def test_an_output_path_that_cannot_be_written_fails_at_start_up(suite, tmp_path, option):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    usage_error(suite.run("--co", "--embedded", f"{option}={blocker}/out/results.json"),
                f"{option} {blocker}/out/results.json*: {blocker} is a file, so no folder can be created there")


def test_a_thresholds_file_for_another_model_is_a_usage_error(suite):
    other = suite.path / "thresholds" / "other-model.yaml"
    other.write_text("model: resnet50\naccuracy:\n  fp16: {top1: 76, top5: 93}\n")
    usage_error(suite.run("--co", "--embedded", f"--thresholds={other}"),
                f"thresholds file {other}: model 'resnet50' is not the model being validated "
                "(res2net50_14w_8s, card res2net50)*")


def test_running_where_pytest_finds_no_thresholds_folder_uses_the_packaged_defaults(suite):
    import shutil

    from res2net_validate.thresholds import PACKAGED

    shutil.rmtree(suite.path / "thresholds")
    result = suite.run("--co", "--embedded")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    packaged = PACKAGED / "res2net50.yaml"  # a checkout's top-level thresholds/, an installation's package data
    result.stdout.fnmatch_lines([f"*thresholds file: {packaged}", "*test_top1_top5_meet_thresholds[[]fp16[]]*"])


def test_an_installation_without_its_packaged_thresholds_says_to_reinstall(tmp_path, monkeypatch):
    from res2net_validate import cards
    from res2net_validate import session as session_module
    from res2net_validate.errors import ValidateError
    from res2net_validate.settings import Settings

    # an installation whose package folder lacks _thresholds/
    missing = tmp_path / "res2net_validate" / "_thresholds"
    monkeypatch.setattr(cards, "PACKAGED", missing)
    settings = Settings({"thresholds": None, "embedded": True, "checkpoints_dir": tmp_path / "cache"})
    with pytest.raises(ValidateError, match=re.escape(f"no packaged cards at {missing}: the cards ship inside the "
                       "res2net_validate package (package data)") + r".*Reinstall it \(pip install \.\), or "
                       "pass --card FILE"):
        session_module.ValidationSession(settings, progress=False)


def test_precision_on_the_command_line_overrides_pytest_addopts_and_still_repeats(suite, monkeypatch):
    monkeypatch.setenv("PYTEST_ADDOPTS", "--precision int8")
    only = suite.run("--co", "--precision", "fp32")
    only.stdout.fnmatch_lines(["*test_top1_top5_meet_thresholds[[]fp32[]]*"])
    assert "int8]" not in only.stdout.str()
    both = suite.run("--co", "--precision", "fp16", "--precision", "fp32")
    assert "int8]" not in both.stdout.str() and "fp16]" in both.stdout.str() and "fp32]" in both.stdout.str()


def test_lock_timeout_is_an_option_with_a_checked_value(suite):
    usage_error(suite.run("--co", "--lock-timeout", "soon"),
                "--lock-timeout='soon' (from --lock-timeout)")
