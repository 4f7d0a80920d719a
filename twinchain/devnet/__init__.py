"""A local multi-facility devnet: one validator process per facility on 127.0.0.1.

    twinchain devnet up [--validators 4] [--base-dir DIR] [--slot-ms 1000] [--detach]
    twinchain devnet status [--base-dir DIR] [--json]
    twinchain devnet down [--base-dir DIR]

``up`` makes a key per facility (kept in each node's keystore), a chain spec naming them as the
authorities, a base path per node and free ports; it starts the nodes one by one, reads each
one's p2p address over RPC and gives every earlier node to the next as boot nodes (a full
mesh), and shows a live table until Ctrl-C (which stops the devnet) unless ``--detach``.
Logs go to ``DIR/<facility>/node.log``; ``DIR/devnet.json`` describes the running devnet for
``status`` and ``down``.
"""

from __future__ import annotations
