"""``python -m simulator`` — same as the ``exchange-simulator`` console script."""

import sys

from simulator.cli import main

sys.exit(main())
