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
- A relayed item (``KIND_RELAYED``: an action of the Hyperliquid-compatible API) carries what
  the client signed (the action, its nonce and options) and the engine command the receiving
  member made of it, signed by that member. Every member recomputes the signed digest and
  recovers the signer, which must be the command's signer under the same nonce: nobody can
  forge a trader. The translation of the action into engine commands (asset and client-id
  lookups against that member's state) is the relaying member's, attributable to it by its
  signature.
- Each system item carries a ``nonce`` (the member's clock and a counter), so two equal
  commands put in by one member are two items: the consensus core treats equal item bytes as
  one (that is how a client's resent intent is ordered once).
"""

from __future__ import annotations

import json
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
    Signed,
)
from asyncdex.sequencer.sequencer import Submission
from asyncdex.signing import hl_signing, jsonbody
from asyncdex.signing.eip712 import Domain, SignatureError, recover_address
from asyncdex.signing.intake import IntakeError, ParsedIntent, verify_batch
from asyncdex.signing.intents import MalformedIntent, decode_intent_payload, intent_digest
from asyncdex.types.hashing import keccak256
from asyncdex.types.packing import pack, unpack

KIND_INTENT = 1
KIND_SYSTEM = 2
KIND_RELAYED = 3

# how a relayed item's client signature is checked: the digest of its signed inputs
SCHEME_HL_L1 = "hl-l1"  # a trading action: [action, nonce, vault address, expires after, mainnet]
SCHEME_HL_USER = "hl-user"  # a user-signed action: [action, mainnet]

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


def relayed_digest(domain: bytes, member: int, nonce: int, body: bytes) -> bytes:
    return keccak256(pack([domain, "relayed", member, nonce, body]))


def _client_digest(scheme: Any, inputs: Any) -> bytes:
    """The digest the client signed, recomputed from its signed inputs."""
    if scheme == SCHEME_HL_L1 and isinstance(inputs, list) and len(inputs) == 5:
        action, nonce, vault, expires_after, mainnet = inputs
        if type(nonce) is not int or type(mainnet) is not bool:
            raise ItemRefused("malformed_relayed", "nonce and network must be int and bool")
        return hl_signing.l1_action_digest(action, nonce, vault, expires_after, is_mainnet=mainnet)
    if scheme == SCHEME_HL_USER and isinstance(inputs, list) and len(inputs) == 2:
        action, mainnet = inputs
        if not isinstance(action, dict) or type(mainnet) is not bool:
            raise ItemRefused("malformed_relayed", "a user-signed action is an object")
        return hl_signing.user_signed_digest(action, is_mainnet=mainnet)
    raise ItemRefused("malformed_relayed", f"unknown signing scheme {scheme!r}")


def relayed_item(
    committee: Committee,
    member: int,
    signer: Signer,
    nonce: int,
    scheme: str,
    inputs: list[Any],
    command: Command,
    signature: bytes,
) -> bytes:
    """The item of an action the client signed in another scheme than the native intents',
    with the envelope ``command`` (a ``Signed``) this member made of it."""
    if type(command) is not Signed:
        raise ValueError("a relayed action is a Signed envelope")
    body = pack([scheme, json.dumps(inputs, separators=(",", ":")).encode(),
                 encode_command(command), signature])  # fmt: skip
    member_signature = signer.sign(relayed_digest(committee.domain, member, nonce, body))
    return bytes((KIND_RELAYED,)) + pack([member, nonce, body, member_signature])


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
            KIND_RELAYED: self._relayed,
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
        """The intent id (the digest the client signed) an item claims, without recovering
        its signer: for showing where an intent was ordered, never for executing it."""
        if not item:
            return None
        if item[0] == KIND_RELAYED:
            try:
                return self._relayed(item[1:], recover=False).intent_id
            except (ItemRefused, hl_signing.MalformedAction, ValueError):
                return None
        if item[0] != KIND_INTENT:
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

    def _member_signed(
        self, payload: bytes, kind: str, digest_of: Callable[[bytes, int, int, bytes], bytes]
    ) -> tuple[int, int, bytes]:
        """(member, nonce, body) of ``[member, nonce, body, member signature]``, checked."""
        reason = f"malformed_{kind}"
        try:
            fields: Any = unpack(payload)
        except Exception as exc:
            raise ItemRefused(reason, f"not msgpack: {exc}") from None
        if not isinstance(fields, list) or len(fields) != 4:
            raise ItemRefused(reason, f"a {kind} item is [member, nonce, body, signature]")
        member, nonce, body, signature = fields
        if (
            type(member) is not int
            or type(nonce) is not int
            or type(body) is not bytes
            or type(signature) is not bytes
        ):
            raise ItemRefused(reason, f"{kind} item fields are int, int, bytes, bytes")
        if not 0 <= member < self.committee.size:
            raise ItemRefused("not_a_member", f"member index {member} is not in the committee")
        digest = digest_of(self.committee.domain, member, nonce, body)
        if not self._verify(self.committee.members[member], digest, signature):
            raise ItemRefused("bad_member_signature", f"not signed by member {member}")
        return member, nonce, body

    def _system(self, payload: bytes) -> Submission:
        _, _, encoded = self._member_signed(payload, "system", system_digest)
        try:
            command = decode_command(encoded)
        except CodecError as exc:
            raise ItemRefused("malformed_system", f"command: {exc}") from None
        if type(command) not in SYSTEM_COMMANDS:
            raise ItemRefused("not_a_system_command", f"{type(command).__name__} from a member")
        return Submission(command)

    def _relayed(self, payload: bytes, recover: bool = True) -> Submission:
        _, _, body = self._member_signed(payload, "relayed", relayed_digest)
        try:
            fields: Any = unpack(body)
        except Exception as exc:
            raise ItemRefused("malformed_relayed", f"not msgpack: {exc}") from None
        if not isinstance(fields, list) or len(fields) != 4:
            raise ItemRefused("malformed_relayed", "a relayed body has 4 fields")
        scheme, inputs_json, encoded, signature = fields
        if type(inputs_json) is not bytes or type(encoded) is not bytes:
            raise ItemRefused("malformed_relayed", "inputs and command are bytes")
        if type(signature) is not bytes or len(signature) != 65:
            raise ItemRefused("malformed_relayed", "a client signature is 65 bytes")
        try:
            inputs = jsonbody.loads(inputs_json)
            command = decode_command(encoded)
        except (ValueError, RecursionError, CodecError) as exc:
            raise ItemRefused("malformed_relayed", str(exc)) from None
        if type(command) is not Signed:
            raise ItemRefused("malformed_relayed", "a relayed command is a Signed envelope")
        try:
            digest = _client_digest(scheme, inputs)
            if recover and recover_address(digest, signature) != command.signer:
                raise ItemRefused("bad_signature", "the client's signature is not the signer's")
        except (hl_signing.MalformedAction, SignatureError) as exc:
            raise ItemRefused("bad_signature", str(exc)) from None
        if scheme == SCHEME_HL_L1 and inputs[1] != command.nonce:
            raise ItemRefused("malformed_relayed", "the envelope's nonce is not the signed one")
        return Submission(command, signature, digest)
