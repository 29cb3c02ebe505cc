import sys

from transformer_math.cli import main

sys.exit(main())
