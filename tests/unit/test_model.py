"""Checkpoint loading: the accepted formats load, every wrong file is one clear error."""

import pytest
import torch

from res2net_validate.errors import ValidateError
from res2net_validate.graphs.checkpoint import NUM_PARAMS, create_model, load_model, read_state_dict


@pytest.fixture(scope="module")
def state_dict():
    torch.manual_seed(0)
    return create_model().state_dict()


def test_model_has_the_published_parameter_count():
    assert sum(p.numel() for p in create_model().parameters()) == NUM_PARAMS


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "module_prefix"])
def test_accepted_pth_formats(tmp_path, state_dict, wrap):
    payload = {
        "bare": state_dict,
        "state_dict": {"state_dict": state_dict, "epoch": 3},
        "model": {"model": state_dict},
        "module_prefix": {f"module.{k}": v for k, v in state_dict.items()},
    }[wrap]
    path = tmp_path / "w.pth"
    torch.save(payload, path)
    model = load_model(path)
    assert torch.equal(model.fc.weight, state_dict["fc.weight"])


def test_safetensors(tmp_path, state_dict):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    assert torch.equal(load_model(path).conv1.weight, state_dict["conv1.weight"])


def test_release_checkpoints_without_num_batches_tracked_load(tmp_path, state_dict):
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}, path)
    load_model(path)


class NotATensor:  # weights_only loading refuses arbitrary classes
    pass


@pytest.mark.parametrize("content, reason", [
    ("hello", "KeyError: not a PyTorch zip/pickle or safetensors file"),
    ("not a checkpoint\n", "UnpicklingError: not a PyTorch zip/pickle or safetensors file"),
    ("TRUNCATED", "RuntimeError: a damaged or truncated PyTorch file"),
    ("OBJECT", "UnpicklingError: it holds Python objects beyond tensors and plain containers"),
])
def test_not_a_checkpoint_is_one_line_of_our_own(tmp_path, content, reason):
    path = tmp_path / "notes.pth"
    if content in ("TRUNCATED", "OBJECT"):
        torch.save({"w": torch.zeros(3), "o": NotATensor()}, path)
        if content == "TRUNCATED":
            path.write_bytes(path.read_bytes()[:100])
    else:
        path.write_text(content)
    with pytest.raises(ValidateError) as raised:
        read_state_dict(path)
    message = str(raised.value)
    assert message.startswith(f"--weights {path}: not a readable PyTorch/safetensors checkpoint ({reason}")
    # torch's own text is several lines and advises weights_only=False (which runs the file's code)
    assert "\n" not in message and "weights_only" not in message and "issue" not in message


def test_an_unreadable_checkpoint_is_one_line_naming_the_system_error(tmp_path, monkeypatch):
    # root ignores chmod 000, so the read error is raised by the loader (and by any second open)
    path = tmp_path / "locked.pth"
    path.write_bytes(b"PK\x03\x04")
    denied = PermissionError(13, "Permission denied", str(path))

    def refuse(*args, **kwargs):
        raise denied

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(type(path), "open", refuse)
    with pytest.raises(ValidateError) as raised:
        read_state_dict(path)
    assert str(raised.value).startswith(f"--weights {path}: not a readable PyTorch/safetensors checkpoint "
                                        "(PermissionError: [Errno 13] Permission denied")


def test_missing_file(tmp_path):
    with pytest.raises(ValidateError, match="no such file"):
        read_state_dict(tmp_path / "absent.pth")


def test_a_dict_without_tensors(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "arch": "res2net"}, path)
    with pytest.raises(ValidateError, match=r"no state_dict found \(top-level keys: epoch, arch\)"):
        read_state_dict(path)


def test_missing_unexpected_and_mismatched_keys_are_reported_together(tmp_path, state_dict):
    broken = dict(state_dict)
    broken.pop("layer1.0.conv1.weight")
    broken["extra.weight"] = torch.zeros(1)
    broken["fc.weight"] = torch.zeros(10, 2048)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(ValidateError) as error:
        load_model(path)
    message = str(error.value)
    assert "1 missing keys (e.g. layer1.0.conv1.weight)" in message
    assert "1 unexpected keys (e.g. extra.weight)" in message
    assert "fc.weight: file (10, 2048) vs model (1000, 2048)" in message
