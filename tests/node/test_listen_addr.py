"""``twinchain node --listen-addr``: an IP or Substrate's /ip4/IP[/tcp/PORT] multiaddr."""

from __future__ import annotations

import pytest

from twinchain import cli


def _parse(*argv: str) -> tuple[str, int | None]:
    args = cli.build_parser().parse_args(["node", "--dev", *argv])
    return args.listen_addr  # type: ignore[no-any-return]


def test_default_is_loopback() -> None:
    assert _parse() == ("127.0.0.1", None)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("10.77.0.1", ("10.77.0.1", None)),
        ("/ip4/0.0.0.0", ("0.0.0.0", None)),
        ("/ip4/10.77.0.2/tcp/30444", ("10.77.0.2", 30444)),
        ("/ip6/::1/tcp/1", ("::1", 1)),
    ],
)
def test_accepted(value: str, want: tuple[str, int | None]) -> None:
    assert _parse("--listen-addr", value) == want


@pytest.mark.parametrize("value", ["host.example", "/ip4/1.2.3.4/udp/5", "/dns/x/tcp/1", "/ip4"])
def test_refused(value: str) -> None:
    with pytest.raises(SystemExit):
        _parse("--listen-addr", value)
