"""Intent ids rebuilt from the journal at start: a native intent's id is its EIP-712 digest;
an envelope the native intake did not sign (the Hyperliquid API's withdrawal) gets none."""

from __future__ import annotations

from asyncdex.gateway.node import intent_id_of
from asyncdex.sequencer.records import Record
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intake import ParsedIntent, verify_batch
from asyncdex.signing.intents import Withdraw, asyncdex_domain, intent_digest, sign_intent
from asyncdex.types.hashing import keccak256

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
ALICE = LocalSigner(keccak256(b"intent ids alice"))
NONCE = 1_767_225_600_000


def test_a_native_withdrawal_gets_its_digest_back_and_a_foreign_one_none() -> None:
    intent = Withdraw(ALICE.address, NONCE, 0, 5_000_000, ALICE.address)
    signed = sign_intent(ALICE, DOMAIN, intent)
    (submission,) = verify_batch(DOMAIN, [ParsedIntent(intent, signed.signature)])
    native = Record(NONCE, submission.command, submission.signature)
    assert intent_id_of(DOMAIN, native) == intent_digest(DOMAIN, intent) == submission.intent_id
    # the same envelope signed over another message (as the Hyperliquid API journals it)
    other = ALICE.sign(keccak256(b"some other message"))
    assert intent_id_of(DOMAIN, Record(NONCE, submission.command, other)) is None
    assert intent_id_of(DOMAIN, Record(NONCE, submission.command, b"\x00" * 65)) is None
