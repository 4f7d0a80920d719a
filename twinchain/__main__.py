"""``python -m twinchain``: the same as the ``twinchain`` command."""

import sys

from twinchain.cli import main

sys.exit(main())
