"""A local multi-facility devnet: one validator process per facility on 127.0.0.1.

    twinchain devnet up [--validators 4] [--base-dir DIR] [--slot-ms 1000] [--detach]
    twinchain devnet status [--base-dir DIR] [--json]
    twinchain devnet down [--base-dir DIR]

``up`` makes a key per facility (kept in each node's keystore) and its libp2p key (so every
node's address is known in advance), a chain spec naming them as the authorities with the
facilities' domain at genesis (:mod:`twinchain.devnet.domain`: each facility verified, with
an operator, an owner, three twins with device keys, a gateway and a predictive worker), a
base path per node and free ports; it starts every node at once, each dialing all others (a
full mesh), each keeping its own facility's archive (``--archive-facility``), then one
simulating gateway per facility (``twinchain gateway``) talking to its facility's node (the
chain gets its batches' commitments, that node's archive their readings), and shows a
live table (blocks, finality, readings per second into and out of each gateway) until Ctrl-C
(which stops gateways and nodes) unless ``--detach``. Logs go to ``DIR/<facility>/node.log``
and ``DIR/<facility>/gateway/gateway.log``; ``DIR/devnet.json`` describes the running devnet
for ``status`` and ``down``; ``DIR/domain.json`` names the domain accounts (their keys are in
``DIR/keys``).
"""

from __future__ import annotations
