"""`python -m convparity ...` is the `convparity` command."""

import sys

from convparity.command import main

sys.exit(main())
