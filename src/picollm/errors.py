"""Errors a user can fix. The CLI prints their message without a traceback."""

import errno


class UserError(Exception):
    """Bad input (a params value, a file, a command-line argument); the message names it and the fix."""


class ConfigError(UserError, ValueError):
    """A params file or value that cannot be used; the message says which key and how to fix it."""


class DiskFullError(UserError, OSError):
    """No space left for a file; the message names the file and the space it needs."""

    def __str__(self) -> str:
        return str(self.strerror)


def error_line(command: str, err: Exception) -> str:
    """How the CLI prints a user error: ``picollm <command>: error: <message>``; for an OSError,
    what failed on which file and what to do."""
    return f"picollm {command}: error: {_message(err)}"


def _message(err: Exception) -> str:
    if isinstance(err, UserError) or not isinstance(err, OSError):
        return str(err)
    where = f"{err.filename}: " if err.filename else ""
    fix = {
        errno.ENOSPC: "free space on that device and rerun (a killed run resumes)",
        errno.EACCES: "make it writable (or readable) for this user, or pick another path",
        errno.EROFS: "the file system is read-only: work in a writable copy",
    }.get(err.errno or 0, "check the path and rerun")
    return f"{where}{err.strerror or err}; {fix} (PICOLLM_DEBUG=1 shows the traceback)"
