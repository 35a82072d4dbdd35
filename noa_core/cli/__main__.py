"""``python -m noa_core.cli``: the same as the ``noa`` command."""

import sys

from noa_core.cli import main

sys.exit(main())
