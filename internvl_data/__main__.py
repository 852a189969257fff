import sys

from internvl_data.cli.dispatch import main

sys.exit(main())
