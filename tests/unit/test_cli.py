"""The res2net-validate command line: export to ONNX and the error path."""

import pytest

from res2net_validate.cli import main


def test_export_prints_both_graphs_and_reuses_them(random_weights_export):
    # the two calls ran once for the session, on a cold cache of their own (tests/conftest.py)
    (code, first), (again, second) = random_weights_export.calls
    assert code == 0
    assert first[0].startswith("fp32: ") and "(built; vs torch fp32: max |diff|" in first[0]
    assert first[1].startswith("fp16: ") and "(built; vs onnx fp32" in first[1]
    assert again == 0
    assert all("(cached;" in line for line in second)


def test_a_missing_checkpoint_is_one_line_and_exit_code_2(tmp_path, capsys):
    assert main(["export", f"--weights={tmp_path / 'absent.pth'}"]) == 2
    assert "res2net-validate export: error: --weights" in capsys.readouterr().err


def test_weights_that_are_a_text_file_are_one_line_without_torchs_advice(tmp_path, capsys):
    notes = tmp_path / "w.pth"
    notes.write_text("not a checkpoint\n")
    assert main(["export", f"--weights={notes}", f"--cache-dir={tmp_path / 'cache'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"res2net-validate export: error: --weights {notes}: not a readable PyTorch/safetensors checkpoint "
                   "(UnpicklingError: not a PyTorch zip/pickle or safetensors file). Pass the original "
                   "res2net50_14w_8s-6527dddc.pth, a timm .pth or a .safetensors file.")


def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit):
        main(["frobnicate"])


@pytest.mark.parametrize("command", ["data", "embedded", "export", "quantize", "report"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: res2net-validate {command} ")


def test_python_dash_m_runs_the_same_main():
    import subprocess
    import sys

    from res2net_validate import __version__

    done = subprocess.run([sys.executable, "-m", "res2net_validate.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"res2net-validate {__version__}"


def test_domain_modules_carry_no_cli():
    """argparse and the option table belong to cli/ (and the plugin), not to the stages they drive."""
    import ast
    from pathlib import Path

    import res2net_validate

    package = Path(res2net_validate.__file__).parent
    offenders = []
    for folder in ("data", "embedded", "graphs", "reports"):
        for path in sorted((package / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                else:
                    continue
                offenders += [f"{path.relative_to(package)}: {name}" for name in names
                              if name == "argparse" or name.split(".")[-1] == "settings"]
    assert offenders == []
