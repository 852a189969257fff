"""`python -m internvl_train` is `ivl-train`."""

import sys

from internvl_train.cli.dispatch import main

sys.exit(main())
