"""What a committee block carries: tagged items, and how every member turns them into journal
submissions.

Invariants:
- An item is ``kind byte || payload``. ``submissions_of`` is a pure function of the item's
  bytes, the venue's signing domain and the committee: every member gets the same answer for
  the same item, so what a block executes is decided by its certified bytes, never by one
  member's opinion. An item that does not decode or verify becomes nothing, counted by reason.
- A trader's item (``KIND_INTENT``) is the signed intent itself, in its canonical binary form
  (``asyncdex.signing.intents.encode_signed_intent``): every member recovers the signer from
  the signature, so neither a leader nor the member that received it can forge a trader or
  change what was signed.
- A system item (``KIND_SYSTEM``: oracle prices relayed from publishers, deposits, protective
  mode, forced L1 requests) carries the command, the index of the committee member that put it
  in and that member's signature over the committee domain: only members can add system
  commands, each one is attributable to its member, and a member cannot sign in another's
  name. The block marker ``CommitteeBlock`` is never an item: members derive it from the block.
- Each system item carries a ``nonce`` (the member's clock and a counter), so two equal
  commands put in by one member are two items: the consensus core treats equal item bytes as
  one (that is how a client's resent intent is ordered once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import Signer, Verifier
from asyncdex.messages.codec import CodecError, decode_command, encode_command
from asyncdex.messages.commands import (
    Command,
    Deposit,
    ForceCancelAll,
    ForceWithdraw,
    PublishOraclePrice,
    SetProtectiveMode,
)
from asyncdex.sequencer.sequencer import Submission
from asyncdex.signing.eip712 import Domain
from asyncdex.signing.intake import IntakeError, ParsedIntent, verify_batch
from asyncdex.signing.intents import MalformedIntent, decode_intent_payload, intent_digest
from asyncdex.types.hashing import keccak256
from asyncdex.types.packing import pack, unpack

KIND_INTENT = 1
KIND_SYSTEM = 2

# what a member may put in for the venue (the node's own commands); anything else is dropped
SYSTEM_COMMANDS: frozenset[type] = frozenset(
    {PublishOraclePrice, Deposit, SetProtectiveMode, ForceWithdraw, ForceCancelAll}
)


class ItemRefused(ValueError):
    """An item that no member executes; ``reason`` is a short stable name for counting."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def intent_item(signed_intent: bytes) -> bytes:
    """The item of a trader's signed intent (its canonical binary form)."""
    return bytes((KIND_INTENT,)) + signed_intent


def system_digest(domain: bytes, member: int, nonce: int, command: bytes) -> bytes:
    return keccak256(pack([domain, "system", member, nonce, command]))


def system_item(
    committee: Committee, member: int, signer: Signer, nonce: int, command: Command
) -> bytes:
    """The item of one of the node's own commands, signed by committee member ``member``."""
    if type(command) not in SYSTEM_COMMANDS:
        raise ValueError(f"{type(command).__name__} is not a command a member may put in")
    encoded = encode_command(command)
    signature = signer.sign(system_digest(committee.domain, member, nonce, encoded))
    return bytes((KIND_SYSTEM,)) + pack([member, nonce, encoded, signature])


class ItemDecoder:
    """Turns certified items into journal submissions, the same way on every member."""

    def __init__(self, domain: Domain, committee: Committee, verify: Verifier) -> None:
        self.domain = domain
        self.committee = committee
        self._verify = verify
        self.refused: dict[str, int] = {}
        self._decoders: dict[int, Callable[[bytes], Submission]] = {
            KIND_INTENT: self._intent,
            KIND_SYSTEM: self._system,
        }

    def submissions_of(self, items: Sequence[bytes]) -> list[Submission]:
        """The submissions of ``items`` in order; refused items are left out and counted."""
        out = []
        for item in items:
            try:
                out.append(self.decode(item))
            except ItemRefused as refusal:
                self.refused[refusal.reason] = self.refused.get(refusal.reason, 0) + 1
        return out

    def intent_id_of(self, item: bytes) -> bytes | None:
        """The intent id (EIP-712 digest) a trader's item claims, without recovering its
        signer: for showing where an intent was ordered, never for executing it."""
        if not item or item[0] != KIND_INTENT:
            return None
        try:
            intent, _ = decode_intent_payload(item[1:])
            return intent_digest(self.domain, intent)
        except MalformedIntent:
            return None

    def decode(self, item: bytes) -> Submission:
        if not item:
            raise ItemRefused("empty", "an empty item")
        decoder = self._decoders.get(item[0])
        if decoder is None:
            raise ItemRefused("kind", f"unknown item kind {item[0]}")
        return decoder(item[1:])

    def _intent(self, payload: bytes) -> Submission:
        try:
            parsed = decode_intent_payload(payload)
        except MalformedIntent as exc:
            raise ItemRefused("malformed_intent", str(exc)) from None
        try:
            (submission,) = verify_batch(self.domain, [ParsedIntent(*parsed)])
        except IntakeError as exc:
            raise ItemRefused("bad_signature", str(exc)) from None
        return submission

    def _system(self, payload: bytes) -> Submission:
        try:
            fields: Any = unpack(payload)
        except Exception as exc:
            raise ItemRefused("malformed_system", f"not msgpack: {exc}") from None
        if not isinstance(fields, list) or len(fields) != 4:
            raise ItemRefused("malformed_system", "a system item is [member, nonce, command, sig]")
        member, nonce, encoded, signature = fields
        if (
            type(member) is not int
            or type(nonce) is not int
            or type(encoded) is not bytes
            or type(signature) is not bytes
        ):
            raise ItemRefused("malformed_system", "system item fields are int, int, bytes, bytes")
        if not 0 <= member < self.committee.size:
            raise ItemRefused("not_a_member", f"member index {member} is not in the committee")
        digest = system_digest(self.committee.domain, member, nonce, encoded)
        if not self._verify(self.committee.members[member], digest, signature):
            raise ItemRefused("bad_member_signature", f"not signed by member {member}")
        try:
            command = decode_command(encoded)
        except CodecError as exc:
            raise ItemRefused("malformed_system", f"command: {exc}") from None
        if type(command) not in SYSTEM_COMMANDS:
            raise ItemRefused("not_a_system_command", f"{type(command).__name__} from a member")
        return Submission(command)
