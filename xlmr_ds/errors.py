"""The one exception type for problems a user can fix.

Every part of xlmr-ds raises `XLMRDSError` for bad input (a config key, a file, a flag value) with a
message that names the thing and says what was expected. The CLI prints it as a single line and exits
non-zero; any other exception is a bug and keeps its traceback.
"""


class XLMRDSError(Exception):
    """A user-fixable error; its message is one line naming the file, key or value and the fix."""
