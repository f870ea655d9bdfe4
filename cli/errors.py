"""The CLI's one error type, in a module of its own: importing it costs nothing (no Hydra), so that
shell completion, which imports the CLI on every Tab, stays fast."""


class UserError(Exception):
    """A one-line message for the user."""
