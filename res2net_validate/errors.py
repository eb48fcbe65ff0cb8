"""One exception type for every input problem the user can fix.

The message must name the file or option at fault and say what to do; the plugin
shows it as-is, without a traceback.
"""


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
