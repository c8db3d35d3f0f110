"""Errors a user can cause (a file, name, record or option that is not what was expected). The CLI
turns them into a one-line message and exit code 2; Python callers catch them as usual."""


class UserError(Exception):
    """Bad input from the user (file, name, record, option); the message names it and what was expected."""
