"""The one error type that escapes the library: bad input, named field, bad value, what is allowed."""


class TmathError(ValueError):
    """Invalid input: the message names the field, the value given and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: got {shown}; {allowed}")
