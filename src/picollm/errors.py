"""Errors a user can fix. The CLI prints their message without a traceback."""


class UserError(Exception):
    """Bad input (a params value, a file, a command-line argument); the message names it and the fix."""


class ConfigError(UserError, ValueError):
    """A params file or value that cannot be used; the message says which key and how to fix it."""


def error_line(command: str, err: UserError) -> str:
    """How the CLI prints a user error: ``picollm <command>: error: <message>``."""
    return f"picollm {command}: error: {err}"
