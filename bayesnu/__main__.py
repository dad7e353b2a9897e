"""``python -m bayesnu`` runs the command line."""

import sys

from bayesnu.cli import main

sys.exit(main())
