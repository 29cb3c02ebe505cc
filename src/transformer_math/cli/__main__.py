"""`python -m transformer_math.cli`: the tmath command."""

from transformer_math.cli import entry

entry()
