"""Errors meant for the user: the CLI prints their message (no traceback) and exits non-zero."""


class UserError(Exception):
    """Bad input (a missing or corrupt file, a wrong shape, a NaN, an option that does not fit).

    The message names the file or option and the problem; ``exit_code`` is what the CLI returns.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
