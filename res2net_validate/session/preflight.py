"""Start-up checks: every mistake in the options that would otherwise surface after minutes of work
(or, worse, turn into a skip that leaves a CI gate green) is one usage error before anything runs."""

from __future__ import annotations

from pathlib import Path

from ..cache import check_can_create
from ..errors import ValidateError
from ..settings import Settings
from .capabilities import Capabilities
from .identity import RunIdentity
from .inputs import Inputs

# Host memory one more image in a batch costs: ONNX Runtime FP32 on CPU peaks 12.6 MiB higher per image
# (batch 16 -> 48: 476 -> 881 MiB RSS); the input batch itself is 0.6 MiB of it.
BYTES_PER_IMAGE = 13 * 2**20
_INPUT_PATHS = (("calib_dir", True, "a directory of images"), ("calib_list", False, "a list file"),
                ("compare_baseline", False, "a baseline file written by --save-baseline=FILE"),
                ("weights", False, "a checkpoint file (.pth or .safetensors)"),
                ("dataset_dir", True, "the ImageNet validation folder"))


class Preflight:
    def __init__(self, settings: Settings, inputs: Inputs, capabilities: Capabilities, identity: RunIdentity):
        self.settings = settings
        self.inputs = inputs
        self.capabilities = capabilities
        self.identity = identity

    def run(self, outputs: dict[str, Path] | None = None) -> None:
        """All checks, cheapest first; ``outputs`` are other files the run writes at its end, by label."""
        self.check_paths()
        for label, path in (outputs or {}).items():
            check_output_file(path, label)
        self.check_batch_size()
        if not self.inputs.configured.skip_reason:
            self.inputs.thresholds()  # a malformed file fails now, not after minutes of work
        if self.inputs.configured.embedded:
            self.check_embedded_params()
        self.check_backend()
        if self.capabilities.score() and not self.inputs.configured.embedded:  # the embedded one comes later
            self.inputs.split()  # a folder without a layout, or too few images, before any export
        if self.settings.compare_baseline is not None:
            self.identity.baseline()  # likewise an unreadable baseline

    def check_paths(self) -> None:
        """Paths that do not exist or clash, and output files that could not be written at the end."""
        s = self.settings
        given = [name for name in ("weights", "dataset_dir") if s.values[name] is not None]
        if s.embedded and given:
            # The embedded default brings its own weights and data: silently ignoring these would
            # "validate" whatever checkpoint a CI job passed.
            others = " and ".join(f"--{name.replace('_', '-')} {s.values[name]} (from {s.sources[name]})"
                                  for name in given)
            raise ValidateError(f"--embedded (from {s.sources['embedded']}) runs on its own generated images and "
                                f"stand-in checkpoint, but {others} {'were' if len(given) > 1 else 'was'} also "
                                "given: use one or the other")
        for name, want_dir, what in _INPUT_PATHS:
            value = s.values[name]
            if value is None:
                continue
            path = Path(value)
            if not path.exists():
                problem = "not found"
            elif path.is_dir() != want_dir:
                problem = "is a directory" if path.is_dir() else "is a file"
            else:
                continue
            raise ValidateError(f"--{name.replace('_', '-')} {value} (from {s.sources[name]}): {problem}; "
                                f"expected {what}")
        for name in ("report_json", "save_baseline", "report_dir"):  # written at the end of the run
            value = s.values.get(name)
            if value is not None:
                target = Path(value) / "report.md" if name == "report_dir" else Path(value)
                check_output_file(target, f"--{name.replace('_', '-')} {value} (from {s.sources[name]})")

    def check_embedded_params(self) -> None:
        """The card's embedded_params: must be EmbeddedParams fields in range (core cannot check them)."""
        from ..embedded.default import params_for

        card = self.inputs.card
        try:
            params_for(card.embedded_params)
        except ValidateError as exc:
            raise ValidateError(f"card {card.path}: embedded_params: {exc}") from None

    def check_batch_size(self) -> None:
        """A batch that cannot fit in memory is a usage error now, not a MemoryError mid-run."""
        available = _available_memory()
        batch = self.settings.batch_size
        if available is not None and batch * BYTES_PER_IMAGE > available:
            raise ValidateError(
                f"--batch-size {batch} (from {self.settings.sources['batch_size']}): needs about "
                f"{batch * BYTES_PER_IMAGE / 2**30:.1f} GiB of memory ({BYTES_PER_IMAGE / 2**20:.0f} MiB per image), "
                f"but {available / 2**30:.1f} GiB are available; use --batch-size {max(1, available // BYTES_PER_IMAGE)} "
                "or less")

    def check_backend(self) -> None:
        """A backend chosen by name that cannot run a selected precision (or the FP32 reference a relative
        gate needs) is a usage error: skipping would turn a CI gate green without testing anything.
        ``auto`` falls back on its own, so it is not checked."""
        s = self.settings
        if s.backend == "auto":
            return
        wanted = [(precision, "") for precision in s.precision]
        if "fp32" not in s.precision and self.capabilities.score():
            gated = [p for p in s.precision if self.capabilities.wants_reference(p)]
            if gated:
                wanted.append(("fp32", f" (the FP32 reference the relative gate of {', '.join(gated)} needs)"))
        for precision, why in wanted:
            usable = self.capabilities.backend.supports(precision)
            if not usable:
                raise ValidateError(f"--backend {s.backend} (from {s.sources['backend']}) cannot run "
                                    f"{precision}{why}: {usable.reason}")


def check_output_file(path: Path, label: str) -> None:
    """A file the run writes at its end must be writable at its start: its folder exists (or can be
    created) and is writable, and the path is not a folder."""
    if path.is_dir():
        raise ValidateError(f"{label}: is a directory; expected a file name")
    check_can_create(path.parent, label)


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None  # not Linux: nothing to check against
