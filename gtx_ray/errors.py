"""Errors that reach the user as one clear line (the CLI turns them into exit code 2)."""


class ConfigError(ValueError):
    """A configuration file, flag or environment variable is invalid; the message names it."""
