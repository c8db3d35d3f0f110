"""The governance console (`modelwatch ui`): the dashboard served to signed-in people who act on it.
See modelwatch.console.app."""
