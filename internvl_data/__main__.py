from internvl_data.cli.dispatch import main
import sys

sys.exit(main())
