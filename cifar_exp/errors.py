"""The errors a user can fix; each message names the setting and the fix, and is shown as one paragraph."""


class CifarExpError(Exception):
    """Base of the errors caused by the user's input, not by a bug."""


class ConfigError(CifarExpError, ValueError):
    """A config value that is out of range or inconsistent."""


class DataError(CifarExpError, ValueError):
    """A dataset that is missing, unreadable or malformed."""


class TrackingError(CifarExpError, RuntimeError):
    """The tracking store cannot be reached or written."""
