"""The one error type that escapes the library: bad input, named field, bad value, what is allowed."""


class TmathError(ValueError):
    """Invalid input: the message names the field, the value given and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: got {_shown(value)}; {allowed}")


def check_int(field: str, value: object, *, low: int, high: int) -> int:
    """`value` if it is an int (not a bool) from low to high; else one TmathError naming the field and the range.
    The one integer check of the package: config loading, plan arguments, the CLI and the web all use it."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TmathError(field, value, f"an integer from {low:,} to {high:,}")
    return value


def check_number(field: str, value: object, *, low: float, high: float, open_low: bool = False) -> float:
    """`value` if it is a finite int or float (not a bool) in [low, high] ((low, high] with open_low)."""
    ok = (not isinstance(value, bool) and isinstance(value, int | float) and value == value
          and (low < value if open_low else low <= value) and value <= high)
    if not ok:
        raise TmathError(field, value, f"a number {'above' if open_low else 'from'} {low:g} "
                                       f"{'and at most' if open_low else 'to'} {high:g}")
    return float(value)  # type: ignore[arg-type]


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
