"""Per-client call budget: a flooding client is answered with an error, others are not."""

from __future__ import annotations

import httpx

from twinchain.protocol.jsonrpc import RATE_LIMITED
from twinchain.rpc.transport import RateLimiter


def test_token_bucket_refills_and_caps_bursts() -> None:
    now = [0.0]
    rl = RateLimiter(10, clock=lambda: now[0])
    assert rl.allow("a", 20)  # a full burst of twice the rate
    assert not rl.allow("a")
    assert rl.allow("b"), "another client has its own budget"
    now[0] += 0.5
    assert rl.allow("a", 5) and not rl.allow("a")
    now[0] += 100
    assert rl.allow("a", 20) and not rl.allow("a", 1)
    assert RateLimiter(0).allow("x", 10**9), "a rate of 0 disables the limit"


async def test_flooding_client_gets_rate_limited_errors(start_server) -> None:  # type: ignore[no-untyped-def]
    url = "http://" + await start_server(max_calls_per_second=20)
    call = {"jsonrpc": "2.0", "method": "system_name", "id": 1}
    async with httpx.AsyncClient() as http:
        batch = (await http.post(url, json=[call] * 40)).json()
        assert isinstance(batch, list) and len(batch) == 40
        over = (await http.post(url, json=call)).json()
        assert over["error"]["code"] == RATE_LIMITED
