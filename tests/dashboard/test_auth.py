"""Sign-in (signed challenges, one-time links, API keys), sessions and signed actions, without
a node: the dashboard's own checks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from twinchain.dashboard.actions import ActionError, Actions, parse_request, sign_request
from twinchain.dashboard.auth import Sessions, SignInError, sign_challenge
from twinchain.dashboard.cli import sign_text
from twinchain.primitives.errors import CliError
from twinchain.primitives.keys import Keypair
from twinchain.primitives.types import Call
from twinchain.rpc.auth import ApiKeyStore

GENESIS = bytes(range(32))
ALICE, BOB = Keypair.from_dev_name("//Alice"), Keypair.from_dev_name("//Bob")


def sessions(tmp_path: Path | None = None) -> Sessions:
    keys = None if tmp_path is None else tmp_path / "api-keys.json"
    return Sessions("http://127.0.0.1:8080", GENESIS, keys)


def test_signed_challenge_signs_in_once() -> None:
    s = sessions()
    c = s.challenge()
    auth = sign_challenge(ALICE, c)
    assert s.verify(c["nonce"], auth) == ALICE.public
    with pytest.raises(SignInError) as e:
        s.verify(c["nonce"], auth)  # a challenge is used once
    assert e.value.reason == "unknown-challenge"


def test_forged_moved_and_expired_challenges_are_refused() -> None:
    s = sessions()
    c = s.challenge()
    auth = sign_challenge(ALICE, c)
    auth["account"] = "0x" + BOB.public.hex()  # Alice's signature claimed for Bob
    with pytest.raises(SignInError) as e:
        s.verify(c["nonce"], auth)
    assert e.value.reason == "bad-signature"
    # Signed for another dashboard (origin) or chain: the signature covers both.
    c2 = s.challenge()
    other = sign_challenge(ALICE, {**c2, "dashboard": "http://evil.example"})
    with pytest.raises(SignInError):
        s.verify(c2["nonce"], other)
    c3 = s.challenge()
    wrong_chain = sign_challenge(ALICE, {**c3, "genesis": "0x" + bytes(32).hex()})
    with pytest.raises(SignInError):
        s.verify(c3["nonce"], wrong_chain)
    c4 = s.challenge()
    s._challenges[c4["nonce"]]["expires"] = int(time.time() * 1000) - 1
    with pytest.raises(SignInError) as e:
        s.verify(c4["nonce"], sign_challenge(ALICE, c4))
    assert e.value.reason == "expired"
    with pytest.raises(SignInError) as e:
        s.verify(s.challenge()["nonce"], {"account": "0x00"})
    assert e.value.reason == "malformed"


def test_one_time_link_and_session_expiry() -> None:
    s = sessions()
    token = s.link(ALICE.public)
    sess = s.redeem(token)
    assert sess.account == ALICE.public and s.get(sess.token) is sess
    with pytest.raises(SignInError):
        s.redeem(token)
    assert len(sess.token) >= 40 and len(sess.csrf) >= 30  # random, unguessable
    sess.expires_ms = int(time.time() * 1000) - 1  # server-side expiry
    assert s.get(sess.token) is None
    assert s.get("made-up") is None and s.get(None) is None


def test_api_key_sign_in(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path / "api-keys.json")
    good, _ = store.create(ALICE.public, ("readings",))
    no_scope, _ = store.create(BOB.public, ("deliver",))
    revoked, rec = store.create(BOB.public, ("readings",))
    store.revoke(rec.id)
    s = sessions(tmp_path)
    sess = s.sign_in_api_key(good)
    assert sess.account == ALICE.public and sess.method == "api-key" and sess.api_key == good
    for key, reason in ((no_scope, "scope"), (revoked, "revoked"), ("x" * 40, "unknown-key")):
        with pytest.raises(SignInError) as e:
            s.sign_in_api_key(key)
        assert e.value.reason == reason
    with pytest.raises(SignInError):
        sessions().sign_in_api_key(good)  # started without --api-keys


def test_signed_action_round_trip_and_refusals() -> None:
    actions = Actions()
    call = Call(15, 6, (3,))
    p = actions.add("sess", ALICE.public, call, 7, GENESIS, 5, "Acknowledge alarm 3")
    text = json.dumps(p.request())
    sig = sign_text(ALICE, text)  # what `twinchain dashboard sign` prints
    with pytest.raises(ActionError):
        actions.take(p.id, "other-session", sig)  # only the session that asked
    with pytest.raises(ActionError, match="signed-in account"):
        actions.take(p.id, "sess", "0x" + BOB.sign(p.digest).hex())
    xt = actions.take(p.id, "sess", sig)
    assert xt.signed is not None and xt.signed.signer == ALICE.public and xt.signed.nonce == 7
    with pytest.raises(ActionError, match="unknown or expired"):
        actions.take(p.id, "sess", sig)  # once
    # The signer recomputes the payload: a request whose fields were changed is not signed.
    req = parse_request(text)
    with pytest.raises(ActionError, match="digest"):
        sign_request(ALICE, {**req, "nonce": 8})
    with pytest.raises(ActionError, match="another account"):
        sign_request(BOB, req)
    with pytest.raises(CliError):
        sign_text(ALICE, "not json")
