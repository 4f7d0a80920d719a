"""The screens over the tabs, opened by search: a block (by extrinsic hash or by number) and
an account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.explorer.app import ExplorerApp
from twinchain.explorer.screens import AccountScreen, BlockScreen

if TYPE_CHECKING:
    from conftest import Chain, Explorer


def test_block_screen_by_extrinsic_hash(chain: Chain, explorer: Explorer) -> None:
    """The block that holds the extrinsic, decoded, with that extrinsic marked."""
    bob, dave = chain.bob, chain.dave

    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        await explorer.connected(app, pilot)
        await explorer.search(app, pilot, chain.transfer_hash)
        screen = await explorer.block_screen(app, pilot)
        d = screen.detail
        assert d is not None and "0x" + d.summary.hash.hex() == chain.transfer_block
        assert screen.highlight is not None
        x = d.extrinsics[screen.highlight]
        assert (x.call.pallet, x.call.call) == ("Balances", "transfer")
        assert x.call.args == {"dest": dave.address, "value": 10**12}
        assert x.signer == bob.public and x.success is True and x.fee and x.fee > 0
        assert d.extrinsics[0].call.name == "Timestamp.set" and d.extrinsics[0].signer is None
        names = {e.full_name for e in d.events}
        assert {"Balances.Transfer", "System.ExtrinsicSuccess", "Balances.FeePaid"} <= names
        transfer = next(e for e in d.events if e.full_name == "Balances.Transfer")
        assert transfer.args == {"from": bob.address, "to": dave.address, "amount": 10**12}
        words = ("Balances.transfer", "Timestamp.set", "Balances.Transfer", "Bob", "Events")
        await explorer.shows(app, pilot, words)
        await pilot.press("escape")
        assert not isinstance(app.screen, BlockScreen)

    explorer.run(scenario)


def test_block_screen_by_number_shows_the_justification(chain: Chain, explorer: Explorer) -> None:
    """A finalized block with who voted for it, under the status bar."""

    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        await explorer.connected(app, pilot)
        await explorer.until(pilot, lambda: app.finalized_number >= 3, 10, "finality")
        await explorer.search(app, pilot, str(app.finalized_number))
        screen = await explorer.block_screen(app, pilot)
        assert screen.detail is not None and screen.detail.finalized
        j = screen.detail.justification
        assert j is not None and [v.label for v in j.voters] == [chain.facility]
        assert j.target_number >= screen.detail.summary.number
        # The status bar is drawn over the screen too, and blocks keep coming in below it.
        await explorer.shows(app, pilot, ("Justification", chain.name, "best #"))
        rows = app.blocks.rows
        shown = max(rows)
        await explorer.until(pilot, lambda: max(rows) > shown, 10, "a block under the screen")
        assert isinstance(app.screen, BlockScreen)

    explorer.run(scenario)


def test_account_screen(chain: Chain, explorer: Explorer) -> None:
    """Nonce, balance and roles of Bob."""

    async def scenario(app: ExplorerApp, pilot: Any) -> None:
        await explorer.connected(app, pilot)
        await explorer.search(app, pilot, chain.bob.address)
        acct = await explorer.until(
            pilot,
            lambda: app.screen if isinstance(app.screen, AccountScreen) else None,
            5,
            "account screen",
        )
        assert acct.result.data["label"] == "Bob"
        assert acct.result.data["roles"] == ["CertifiedAuditor"]
        assert acct.result.data["nonce"] == 1
        await explorer.shows(app, pilot, ("CertifiedAuditor",))
        await pilot.press("escape")
        assert not isinstance(app.screen, AccountScreen)

    explorer.run(scenario)
