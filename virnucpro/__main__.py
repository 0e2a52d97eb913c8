import sys

from virnucpro.cli import main

sys.exit(main())
