"""`python -m transformer_math`: the tmath command."""

from transformer_math.cli import entry

entry()
