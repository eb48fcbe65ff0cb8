"""The res2net-validate command line: export to ONNX and the error path."""

import pytest
import torch

from res2net_validate.cli import main
from res2net_validate.graphs.checkpoint import create_model


def test_export_prints_both_graphs_and_reuses_them(tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "w.pth"
    torch.save(create_model().state_dict(), weights)
    args = ["export", f"--weights={weights}", f"--cache-dir={tmp_path / 'cache'}"]
    assert main(args) == 0
    first = capsys.readouterr().out.splitlines()
    assert first[0].startswith("fp32: ") and "(built; vs torch fp32: max |diff|" in first[0]
    assert first[1].startswith("fp16: ") and "(built; vs onnx fp32" in first[1]
    assert main(args) == 0
    assert all("(cached;" in line for line in capsys.readouterr().out.splitlines())


def test_a_missing_checkpoint_is_one_line_and_exit_code_2(tmp_path, capsys):
    assert main(["export", f"--weights={tmp_path / 'absent.pth'}"]) == 2
    assert "res2net-validate export: error: --weights" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit):
        main(["frobnicate"])
