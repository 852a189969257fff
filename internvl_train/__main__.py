"""`python -m internvl_train` is `ivl-train`."""

import sys

from .cli import main

sys.exit(main())
