"""The one error type that escapes the library: bad input, named field, bad value, what is allowed."""


class TmathError(ValueError):
    """Invalid input: the message names the field, the value given and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: got {_shown(value)}; {allowed}")


def _shown(value: object) -> str:
    """repr(value) cut to 80 characters — and never an error itself (a 5,000-digit int cannot be repr'd)."""
    try:
        shown = repr(value)
    except (ValueError, RecursionError):
        shown = f"<{type(value).__name__} too large to print>"
    shown = shown.encode("ascii", "backslashreplace").decode("ascii") if not shown.isascii() else shown
    return shown if len(shown) <= 80 else shown[:77] + "..."
