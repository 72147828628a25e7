"""Errors a user can fix. The CLI prints their message without a traceback."""


class UserError(Exception):
    """Bad input (a params value, a file, a command-line argument); the message names it and the fix."""


class ConfigError(UserError, ValueError):
    """A params file or value that cannot be used; the message says which key and how to fix it."""


class DiskFullError(UserError, OSError):
    """No space left for a file; the message names the file and the space it needs."""

    def __str__(self) -> str:
        return str(self.strerror)
