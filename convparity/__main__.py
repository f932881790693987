"""`python -m convparity ...` is the `convparity` command."""

import sys

from convparity.harness.cli import main

sys.exit(main())
