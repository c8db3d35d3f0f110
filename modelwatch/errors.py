"""The user-error type, as the CLI and the public API name it (it lives in the core)."""

from modelwatch.tasks.errors import UserError

__all__ = ["UserError"]
