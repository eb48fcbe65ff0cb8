"""One exception type for every input problem the user can fix.

The message must name the file or option at fault and say what to do; the plugin
shows it as-is, without a traceback.
"""


class ValidateError(Exception):
    """Bad input (file, option, dataset, checkpoint) with an actionable message."""


class NotConfigured(Exception):
    """An input this test needs was not given (e.g. no dataset for an accuracy test); the test skips
    with this message, which says what to pass."""
