"""Errors of the local stack: one clear sentence with the fix, never a stack trace."""


class StackError(RuntimeError):
    """Something the person running the stack must fix; the message says what and how."""
