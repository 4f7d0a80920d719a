"""The web dashboard for plant managers and maintenance leads (``twinchain dashboard``).

A Starlette app served by hypercorn on asyncio, beside a facility's node: it reads the chain
over JSON-RPC only (:mod:`twinchain.client`), follows the finalized heads and pushes them to
the pages over server-sent events. Users sign in with their own key (a signed challenge) or
an API key of the node's; each sees what the chain lets that account see (:mod:`.views`,
enforced in the JSON endpoints of :mod:`.app`). Actions recorded on chain are signed by the
user, never by the dashboard (:mod:`.actions`). Static assets, uPlot included, ship with the
package: no CDN.
"""
