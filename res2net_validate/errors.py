"""Every exception the package raises of its own, in one place.

``ValidateError`` is the one type for every input problem the user can fix: its message must name the
file or option at fault and say what to do; the plugin shows it as-is, without a traceback.
"""

from pathlib import Path


class ValidateError(Exception):
    """Bad input (file, option, dataset, checkpoint) with an actionable message."""


class NotConfigured(Exception):
    """An input this test needs was not given (e.g. no dataset for an accuracy test); the test skips
    with this message, which says what to pass."""


MAX_MESSAGE = 600  # characters: a hostile value must not turn one error line into megabytes


class FormatError(ValidateError):
    """A file that does not follow its declared format (``schemas.py``): one line naming the file,
    the field path inside it and what was expected there."""

    def __init__(self, source: str, field: str, expected: str):
        self.source, self.field, self.expected = source, field, expected
        where = f"{source}: {field}" if field else source
        message = " ".join(f"{where}: {expected}".split())  # one line, whatever the value held
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE - 3] + "..."
        super().__init__(message)


class BadImageError(ValidateError):
    """Raised by ``data.preprocess`` for an image file that cannot be decoded (truncated, corrupt, not an
    image, too large, not a file).

    ``advice`` is what the caller offers: the plugin adds --skip-bad-images, a command without that
    option does not."""

    def __init__(self, path: Path, reason: str, advice: str = "replace or remove the file"):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot decode image {self.path}: {reason.rstrip('.')}. {advice[:1].upper()}{advice[1:]}")


class DiskFullError(ValidateError):
    """Raised by ``cache`` when the cache folder has not enough space for a build."""


class NotRegularFile(Exception):
    """Raised by ``schemas.open_regular`` for a path that is not a regular file; the message says what it is
    instead ("a FIFO (named pipe)", ...)."""


class EnginePrecisionError(ValidateError):
    """Raised by ``backends.tensorrt.inspector`` when an engine does not run its convolutions in the
    precision its graph asks for."""


class EngineInspectionError(ValueError):
    """Raised by ``backends.tensorrt.inspector`` when the inspector's output cannot be read (e.g. the
    engine was not built with DETAILED verbosity)."""


class EngineParseFailure(Exception):
    """Raised by ``backends.tensorrt.builder`` when TensorRT's ONNX parser refuses the graph in one typing
    mode; the builder catches it and tries the next mode."""


class EngineBuildFailure(Exception):
    """Raised by ``backends.tensorrt.builder`` when TensorRT builds no engine in one typing mode; the
    builder catches it and tries the next mode."""


class CudaError(RuntimeError):
    """Raised by ``backends.cuda_runtime.CudaRuntime`` when a CUDA runtime call returns an error."""
