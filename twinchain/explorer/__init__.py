"""twinchain.explorer: the block explorer TUI (``twinchain explorer [--rpc URL]``).

``decode`` decodes calls, events and storage from the node's runtime metadata, ``data``
fetches what the screens show over :class:`twinchain.client.ReconnectingClient`,
``app`` is the Textual application, which composes the tabs of ``tabs`` (one module each) and
pushes the block and account screens of ``screens``; ``widgets`` holds what they share.
"""
