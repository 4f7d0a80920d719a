"""Log levels shared by every layer (the ``-l`` parsing itself is the node's: ``node.logspec``)."""

from __future__ import annotations

import logging

#: Substrate's lowest level; Python has none below DEBUG.
TRACE = 5
logging.addLevelName(TRACE, "TRACE")
