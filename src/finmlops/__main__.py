import sys

from finmlops.cli import main

sys.exit(main())
