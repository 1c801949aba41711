"""``python -m stpr ...``: the same as the ``stpr`` command."""

import sys

from stpr.cli import main

sys.exit(main())
