"""Errors a user can act on. The CLI prints their message (no traceback) and exits with status 2."""


class BenchError(Exception):
    """Base class: the message must name the file / key / line and what was expected."""


class ConfigError(BenchError):
    """A config key is unknown, mistyped or out of range."""


class DataError(BenchError):
    """A data file is missing, malformed or empty."""


class ModelError(BenchError):
    """A model or checkpoint cannot be loaded, or two models do not fit together."""
