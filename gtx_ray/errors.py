"""Errors that reach the user as one clear line (the CLI turns them into exit code 2)."""


class ConfigError(ValueError):
    """A configuration file, flag or environment variable is invalid; the message names it."""


class TokenAvailable(Exception):
    """A Ray cluster wants a token and this user has one (``path``) that Ray was not told to
    send; Ray reads its authentication mode once per process, so the CLI starts itself again
    with ``RAY_AUTH_MODE=token``."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path
