"""Sealing signed intents for a committee venue, client side (see ``docs/fairness.md``).

Invariants:

- What is sealed is exactly the signed intent the client would otherwise send: its canonical
  binary form, encrypted to the committee's key for one epoch, in an envelope signed by the
  same key (:func:`asyncdex.fairness.sealing.seal_intent`). The node, the leader and every
  member see only the public header (account, nonce, expiry, market, epoch, fee cap) until
  the committee releases that epoch's key, after the envelope's place in a block is
  certified.
- The key comes from the node, read strictly: ``GET /v1/venue`` answers in committee mode
  ``"sealing": {"epoch": int, "epoch_ms": int, "public_key": "0x" + 96 hex digits}`` (the
  committee's public key, compressed G1). A venue without ``sealing`` takes no sealed
  intents, and asking to seal there raises instead of sending plaintext.
- The target epoch is the client clock's (``now_ms // epoch_ms``), or the next one when
  less than a lead (``lead_ms``) is left of it, never earlier than the epoch the node last
  announced: an envelope for an epoch whose key is already out would be readable by anyone,
  so nodes refuse it, and a clock that runs slow must not cause that. It is never more than
  one epoch past the clock's, the furthest a node takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asyncdex.client.keys import BaseWallet
from asyncdex.fairness.bls import G1_BYTES, PointError, decode_g1
from asyncdex.fairness.sealing import SealedIntent, SealingKey
from asyncdex.signing.eip712 import Domain
from asyncdex.signing.intents import SignedIntent


@dataclass(frozen=True, slots=True)
class SealingInfo:
    """The committee's sealing key and epoch as the node announced them."""

    epoch: int  # the node's current sealing epoch when it answered
    epoch_ms: int  # epoch length in ms; epoch = floor(block timestamp / epoch_ms)
    public_key: bytes  # the committee's public key, compressed G1 (48 bytes)

    @classmethod
    def from_json(cls, document: Any) -> SealingInfo:
        """Strictly read the venue's ``sealing`` object; ``ValueError`` names the field."""
        if not isinstance(document, dict):
            raise ValueError("sealing: expected an object")
        unknown = sorted(set(document) - {"epoch", "epoch_ms", "public_key"})
        if unknown:
            raise ValueError(f"sealing: unknown field(s) {', '.join(unknown)}")
        epoch, epoch_ms, key = (
            document.get("epoch"),
            document.get("epoch_ms"),
            document.get("public_key"),
        )
        if type(epoch) is not int or not 0 <= epoch < 1 << 64:
            raise ValueError("sealing.epoch: expected a uint64")
        if type(epoch_ms) is not int or epoch_ms <= 0:
            raise ValueError("sealing.epoch_ms: expected a positive integer")
        if not isinstance(key, str) or not key.startswith("0x") or len(key) != 2 + 2 * G1_BYTES:
            raise ValueError(f"sealing.public_key: expected 0x followed by {2 * G1_BYTES} hex")
        try:
            public_key = bytes.fromhex(key[2:])
            decode_g1(public_key, "sealing.public_key")
        except (ValueError, PointError) as exc:
            raise ValueError(f"sealing.public_key: {exc}") from None
        return cls(epoch, epoch_ms, public_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "epoch_ms": self.epoch_ms,
            "public_key": "0x" + self.public_key.hex(),
        }

    def target_epoch(self, now_ms: int, lead_ms: int = 0) -> int:
        """The epoch to seal for at ``now_ms`` (client clock), never before :attr:`epoch`.

        An envelope counts only in a block of its own epoch: one that reaches a block of a
        later epoch is refused ``epoch_closed``. ``lead_ms`` is the time the envelope needs
        to get from here into a leader's proposal (the trip to the node, its intake, the
        forwarding to the leader): when less than that is left of the current epoch, this
        seals for the next one instead. Committee leaders hold an envelope for the next
        epoch in their pool until they propose a block of that epoch, so sealing ahead costs
        at most the rest of the current epoch in waiting, while sealing too late costs the
        intent. A ``lead_ms`` of an epoch or more always gives the next epoch (never later:
        nodes take only their current epoch and the next).
        """
        if lead_ms < 0:
            raise ValueError(f"lead_ms must not be negative, got {lead_ms}")
        epoch = now_ms // self.epoch_ms
        if (epoch + 1) * self.epoch_ms - now_ms < lead_ms:
            epoch += 1  # too little left of this epoch to reach one of its blocks
        return max(self.epoch, epoch)


def seal_signed_intent(
    wallet: BaseWallet,
    key: SealingKey,
    signed: SignedIntent,
    epoch: int,
    *,
    fee_cap: int = 0,
) -> SealedIntent:
    """Seal ``signed`` (signed by ``wallet``) for ``epoch``; the envelope is signed by it too.

    ``key`` is ``SealingKey(domain, info.public_key)``; keep one per venue, since it caches
    the epoch identities it hashed.
    """
    return wallet.seal(key, signed, epoch, fee_cap=fee_cap)


def sealing_key(domain: Domain, info: SealingInfo) -> SealingKey:
    return SealingKey(domain, info.public_key)
