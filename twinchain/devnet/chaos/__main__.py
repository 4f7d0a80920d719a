"""``python -m twinchain.devnet.chaos``: the same as ``twinchain devnet chaos``."""

from __future__ import annotations

import argparse
import logging
import sys

from twinchain.devnet.chaos import __doc__ as doc
from twinchain.devnet.chaos import add_arguments, main

if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m twinchain.devnet.chaos", description=doc)
    add_arguments(ap)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sys.exit(main(ap.parse_args()))
