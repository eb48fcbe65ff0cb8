"""One exception type for every input problem the user can fix.

The message must name the file or option at fault and say what to do; the plugin
shows it as-is, without a traceback.
"""


class ValidateError(Exception):
    """Bad input (file, option, dataset, checkpoint) with an actionable message."""
