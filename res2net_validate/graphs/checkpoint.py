"""A card's model (timm or torchvision, see ``models``) loaded from the user's file, never downloading anything.

The model is always built with random weights and then loaded from the user's
file.  Accepted files: the original release checkpoint (e.g. ``res2net50_14w_8s-6527dddc.pth``
or torchvision's ``resnet50-0676ba61.pth``, bare state_dicts), timm training checkpoints (``state_dict``/``model``/``state_dict_ema``
inside a dict, ``module.`` prefixes from DataParallel), and ``.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import MODEL_NAME
from ..errors import ValidateError

NUM_PARAMS = 25_059_816  # res2net50_14w_8s, as published (the default card's checkpoint.parameters)
RELEASE_FILE = "res2net50_14w_8s-6527dddc.pth"  # the default card's released checkpoint
_NESTED_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")


def create_model(model_name: str = MODEL_NAME) -> torch.nn.Module:
    """``model_name``'s network (a ``models`` key) in eval mode, with random weights."""
    from ..models import build

    return build(model_name)


def read_state_dict(path: str | Path, release: str = RELEASE_FILE) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, unwrapped from the common containers (``release``: the card's
    released checkpoint, named in the advice)."""
    path = Path(path)
    if not path.is_file():
        raise ValidateError(f"--weights {path}: no such file. Pass the path of {release} or another checkpoint "
                            "of the card's model.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw = load_file(str(path))
        else:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # every loader has its own exception zoo
        # Our own short reason: torch's text runs to several lines and advises weights_only=False,
        # which would run whatever code the file holds.
        raise ValidateError(
            f"--weights {path}: not a readable PyTorch/safetensors checkpoint ({type(exc).__name__}: "
            f"{_unreadable_reason(path, exc)}). "
            f"Pass the original {release}, a timm .pth or a .safetensors file."
        ) from None
    state = raw
    while isinstance(state, dict) and not _is_tensor_dict(state):
        inner = next((state[k] for k in _NESTED_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not _is_tensor_dict(state):
        raise ValidateError(
            f"--weights {path}: no state_dict found (top-level keys: {_preview(raw)}). "
            "Pass a checkpoint holding the model's tensors."
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


def _unreadable_reason(path: Path, exc: Exception) -> str:
    import pickle

    if isinstance(exc, OSError):  # unreadable bytes (permissions, I/O): the system's own reason says it
        return str(exc)
    with path.open("rb") as f:
        head = f.read(4)
    if path.suffix == ".safetensors":
        return "not a valid safetensors file (damaged or truncated header)"
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch's zip format, or a bare pickle
        return "not a PyTorch zip/pickle or safetensors file"
    if isinstance(exc, pickle.UnpicklingError):
        return "it holds Python objects beyond tensors and plain containers, which are never unpickled here"
    return "a damaged or truncated PyTorch file"


def load_model(path: str | Path, model_name: str = MODEL_NAME, release: str = RELEASE_FILE) -> torch.nn.Module:
    """Build the model and load ``path`` strictly; any mismatch is one clear error."""
    model = create_model(model_name)
    state = read_state_dict(path, release)
    expected = model.state_dict()
    # BatchNorm's num_batches_tracked only matters in training; old releases may lack it.
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (e.g. {'; '.join(mismatched[:2])})")
    if problems:
        raise ValidateError(
            f"--weights {path} does not fit {model_name}: " + ", ".join(problems) + ". "
            f"Is it a checkpoint of another model, or of another variant of {model_name}?"
        )
    model.load_state_dict(state, strict=False)  # every mismatch was reported above
    return model.eval()


def _is_tensor_dict(d: dict) -> bool:
    return bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())


def _preview(obj) -> str:
    if isinstance(obj, dict):
        return ", ".join(map(str, list(obj)[:5])) or "none"
    return type(obj).__name__


class Checkpoint:
    """A weights file and its module, loaded on first use and then shared (the export and the torch
    backend both read it; neither changes it in place)."""

    def __init__(self, path: str | Path, model_name: str = MODEL_NAME, release: str = RELEASE_FILE):
        self.path = Path(path)
        self.model_name = model_name
        self.release = release
        self._model: torch.nn.Module | None = None

    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = load_model(self.path, self.model_name, self.release)
        return self._model
