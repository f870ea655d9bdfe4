"""The CLI's one error type, in a module of its own: importing it costs nothing (no Hydra), so that
shell completion, which imports the CLI on every Tab, stays fast."""


class UserError(Exception):
    """A one-line message for the user; `code`: the exit status (2: bad input, 1: a run or job failed)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code
