"""`python -m transformer_math.cli`: the tmath command."""

import sys

from transformer_math.cli import main

sys.exit(main())
