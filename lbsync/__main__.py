"""`python -m lbsync` is the same as the `lbsync` command."""
import sys

from lbsync.cli import main

sys.exit(main())
