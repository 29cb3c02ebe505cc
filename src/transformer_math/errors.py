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


class ConfigKeyWarning(UserWarning):
    """A config key no adapter reads that looks like one it does (num_key_value_head for num_key_value_heads):
    left alone it silently changes the model. The CLI prints it; `--strict` makes it an error."""

    def __init__(self, key: str, meant: str) -> None:
        self.key, self.meant = key, meant
        super().__init__(f"config key {key!r} is not read: did you mean {meant!r}? (without it the model takes "
                         f"{meant}'s default; --strict makes this an error)")
