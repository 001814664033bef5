"""`python -m t2i.cli`: the t2i command."""

import sys

from t2i.cli import main

sys.exit(main())
