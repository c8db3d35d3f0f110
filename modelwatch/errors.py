"""Errors a user can cause: the CLI turns them into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user (file, name, record, option); the message names it and what was expected."""
