"""Blocks, certificates and the signed messages members exchange.

Invariants:
- A block's hash is keccak256 of the canonical packing of everything in it except the
  signatures of its justifying certificate (view, height, parent, justify view, the
  justify's signer indices, proposer, timestamp, payload); so a block fetched from any peer is
  authenticated by the hash a certificate names, and which members certified its parent is
  fixed by the block itself (members may hold different valid signature sets for one
  certificate; the block settles which one counts, e.g. for paying signers).
- A block's ``timestamp`` (ms) is its proposer's clock, never below its parent's: the time
  line every member executes with is the committed blocks' timestamps (see ``Replica``'s
  "Block time" rule for the bounds a member checks before voting).
- A block's parent is the block its justifying certificate certifies, and its height is the
  parent's height + 1: the chain is fixed by the certificates.
- Every message carries its sender's index and a signature over ``signing_digest(domain)``,
  a digest that starts with the committee's domain and the message kind, so a signature of
  one kind (a vote) never passes as another (a timeout) or in another committee.
- A vote's signature is also its share of a quorum certificate, and a timeout's is its share
  of a timeout certificate: certificates are lists of (member index, signature), sorted by
  index; they carry no other authority than those signatures.
- ``encode``/``decode`` are inverse on valid messages; ``decode`` refuses any bytes that are
  not a well-formed message with ``MalformedMessage`` (never another exception).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asyncdex.types.hashing import keccak256
from asyncdex.types.packing import PackingError, pack, unpack

GENESIS_VIEW = 0
ZERO_HASH = b"\x00" * 32

Signatures = tuple[tuple[int, bytes], ...]


class MalformedMessage(ValueError):
    """Bytes that do not decode to a well-formed consensus message."""


def _digest(domain: bytes, kind: str, *fields: Any) -> bytes:
    return keccak256(pack([domain, kind, *fields]))


def vote_digest(domain: bytes, view: int, block_hash: bytes) -> bytes:
    return _digest(domain, "vote", view, block_hash)


def timeout_digest(domain: bytes, view: int) -> bytes:
    return _digest(domain, "timeout", view)


def proposal_digest(domain: bytes, view: int, block_hash: bytes) -> bytes:
    return _digest(domain, "proposal", view, block_hash)


@dataclass(frozen=True, slots=True)
class QuorumCertificate:
    """2f+1 votes for one block in one view (the genesis certificate has none)."""

    view: int
    block_hash: bytes
    signatures: Signatures = ()

    @property
    def signers(self) -> tuple[int, ...]:
        return tuple(index for index, _ in self.signatures)


@dataclass(frozen=True, slots=True)
class TimeoutCertificate:
    """2f+1 timeouts for one view: proof that the view may be left without a block."""

    view: int
    signatures: Signatures


@dataclass(frozen=True, slots=True)
class Block:
    view: int
    height: int
    justify: QuorumCertificate
    proposer: int
    payload: tuple[bytes, ...]
    timestamp: int = 0  # ms; set by the proposer (max(parent's, its clock)), covered by hash
    hash: bytes = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", calculate_block_hash(self))

    @property
    def parent(self) -> bytes:
        return self.justify.block_hash


def calculate_block_hash(block: Block) -> bytes:
    return keccak256(
        pack(
            [
                "block",
                block.view,
                block.height,
                block.justify.block_hash,
                block.justify.view,
                list(block.justify.signers),
                block.proposer,
                block.timestamp,
                list(block.payload),
            ]
        )
    )


GENESIS_BLOCK = Block(
    view=GENESIS_VIEW,
    height=0,
    justify=QuorumCertificate(GENESIS_VIEW, ZERO_HASH),
    proposer=0,
    payload=(),
)
GENESIS_QC = QuorumCertificate(GENESIS_VIEW, GENESIS_BLOCK.hash)


@dataclass(frozen=True, slots=True)
class Proposal:
    """The leader of ``block.view`` proposes ``block``; ``tc`` justifies entering the view
    when ``block.justify`` is not from the view just before."""

    block: Block
    tc: TimeoutCertificate | None
    sender: int
    signature: bytes = b""

    def signing_digest(self, domain: bytes) -> bytes:
        return proposal_digest(domain, self.block.view, self.block.hash)


@dataclass(frozen=True, slots=True)
class Vote:
    view: int
    block_hash: bytes
    sender: int
    signature: bytes = b""

    def signing_digest(self, domain: bytes) -> bytes:
        return vote_digest(domain, self.view, self.block_hash)


@dataclass(frozen=True, slots=True)
class TimeoutMessage:
    """``sender`` gives up on ``view``; it carries the sender's highest certificate (its lock)
    and the timeout certificate that let it into ``view`` (so laggards can follow)."""

    view: int
    high_qc: QuorumCertificate
    last_tc: TimeoutCertificate | None
    sender: int
    signature: bytes = b""

    def signing_digest(self, domain: bytes) -> bytes:
        return timeout_digest(domain, self.view)


@dataclass(frozen=True, slots=True)
class NewView:
    """Sent to the leader of ``view`` on entering it by a timeout certificate: the sender's
    highest certificate, so the leader can extend the highest lock."""

    view: int
    high_qc: QuorumCertificate
    sender: int
    signature: bytes = b""

    def signing_digest(self, domain: bytes) -> bytes:
        return _digest(domain, "new-view", self.view, self.high_qc.view, self.high_qc.block_hash)


@dataclass(frozen=True, slots=True)
class BlockRequest:
    """Asks for ``block_hash`` and its ancestors above height ``above_height``."""

    block_hash: bytes
    above_height: int
    sender: int
    signature: bytes = b""

    def signing_digest(self, domain: bytes) -> bytes:
        return _digest(domain, "block-request", self.block_hash, self.above_height)


@dataclass(frozen=True, slots=True)
class BlockResponse:
    """Blocks from the requested one downwards, each the parent of the one before."""

    blocks: tuple[Block, ...]
    sender: int
    signature: bytes = b""

    def signing_digest(self, domain: bytes) -> bytes:
        return _digest(domain, "block-response", [block.hash for block in self.blocks])


@dataclass(frozen=True, slots=True)
class ForwardItem:
    """Payload items a member received from clients, shared so any leader can propose them."""

    items: tuple[bytes, ...]
    sender: int
    signature: bytes = b""

    def signing_digest(self, domain: bytes) -> bytes:
        return _digest(domain, "items", keccak256(pack(list(self.items))))


Message = Proposal | Vote | TimeoutMessage | NewView | BlockRequest | BlockResponse | ForwardItem


# --- wire encoding --------------------------------------------------------------------------


def _qc_fields(qc: QuorumCertificate) -> list[Any]:
    return [qc.view, qc.block_hash, [list(pair) for pair in qc.signatures]]


def _tc_fields(tc: TimeoutCertificate | None) -> list[Any] | None:
    return None if tc is None else [tc.view, [list(pair) for pair in tc.signatures]]


def _block_fields(block: Block) -> list[Any]:
    justify = _qc_fields(block.justify)
    return [block.view, block.height, justify, block.proposer, block.timestamp, list(block.payload)]


def encode(message: Message) -> bytes:
    """The canonical bytes of a message (what a network transport sends)."""
    body: list[Any]
    match message:
        case Proposal():
            body = ["proposal", _block_fields(message.block), _tc_fields(message.tc)]
        case Vote():
            body = ["vote", message.view, message.block_hash]
        case TimeoutMessage():
            high_qc, last_tc = _qc_fields(message.high_qc), _tc_fields(message.last_tc)
            body = ["timeout", message.view, high_qc, last_tc]
        case NewView():
            body = ["new-view", message.view, _qc_fields(message.high_qc)]
        case BlockRequest():
            body = ["block-request", message.block_hash, message.above_height]
        case BlockResponse():
            body = ["block-response", [_block_fields(block) for block in message.blocks]]
        case ForwardItem():
            body = ["items", list(message.items)]
    return pack([*body, message.sender, message.signature])


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise MalformedMessage(f"expected a non-negative integer, got {value!r}")
    return value


def _bytes(value: Any, size: int | None = None) -> bytes:
    if type(value) is not bytes or (size is not None and len(value) != size):
        raise MalformedMessage(f"expected {size or 'some'} bytes, got {value!r:.40}")
    return value


def _signatures(value: Any) -> Signatures:
    if type(value) is not list:
        raise MalformedMessage("signatures are a list of [index, signature]")
    pairs = []
    for pair in value:
        if type(pair) is not list or len(pair) != 2:
            raise MalformedMessage("a signature entry is [index, signature]")
        pairs.append((_int(pair[0]), _bytes(pair[1])))
    return tuple(pairs)


def _decode_qc(value: Any) -> QuorumCertificate:
    if type(value) is not list or len(value) != 3:
        raise MalformedMessage("a quorum certificate is [view, block hash, signatures]")
    return QuorumCertificate(_int(value[0]), _bytes(value[1], 32), _signatures(value[2]))


def _decode_tc(value: Any) -> TimeoutCertificate | None:
    if value is None:
        return None
    if type(value) is not list or len(value) != 2:
        raise MalformedMessage("a timeout certificate is [view, signatures]")
    return TimeoutCertificate(_int(value[0]), _signatures(value[1]))


def _decode_block(value: Any) -> Block:
    if type(value) is not list or len(value) != 6 or type(value[5]) is not list:
        raise MalformedMessage("a block is [view, height, justify, proposer, timestamp, payload]")
    payload = tuple(_bytes(item) for item in value[5])
    justify = _decode_qc(value[2])
    return Block(_int(value[0]), _int(value[1]), justify, _int(value[3]), payload, _int(value[4]))


def decode(data: bytes) -> Message:
    """Parse ``encode``'s bytes; anything else raises ``MalformedMessage``."""
    try:
        fields = unpack(data)
    except (PackingError, ValueError, TypeError) as error:
        raise MalformedMessage(f"not a packed message: {error}") from None
    except Exception as error:  # msgpack's ExtraData/FormatError and friends
        raise MalformedMessage(f"not a packed message: {error}") from None
    if type(fields) is not list or len(fields) < 3 or type(fields[0]) is not str:
        raise MalformedMessage("a message is [kind, ..., sender, signature]")
    kind, body = fields[0], fields[1:-2]
    sender, signature = _int(fields[-2]), _bytes(fields[-1])
    message: Message
    match kind, len(body):
        case "proposal", 2:
            message = Proposal(_decode_block(body[0]), _decode_tc(body[1]), sender, signature)
        case "vote", 2:
            message = Vote(_int(body[0]), _bytes(body[1], 32), sender, signature)
        case "timeout", 3:
            message = TimeoutMessage(
                _int(body[0]), _decode_qc(body[1]), _decode_tc(body[2]), sender, signature
            )
        case "new-view", 2:
            message = NewView(_int(body[0]), _decode_qc(body[1]), sender, signature)
        case "block-request", 2:
            message = BlockRequest(_bytes(body[0], 32), _int(body[1]), sender, signature)
        case "block-response", 1:
            if type(body[0]) is not list:
                raise MalformedMessage("a block response carries a list of blocks")
            blocks = tuple(_decode_block(block) for block in body[0])
            message = BlockResponse(blocks, sender, signature)
        case "items", 1:
            if type(body[0]) is not list or not body[0]:
                raise MalformedMessage("forwarded items are a non-empty list of byte strings")
            message = ForwardItem(tuple(_bytes(item) for item in body[0]), sender, signature)
        case _:
            raise MalformedMessage(f"unknown message kind {kind!r} with {len(body)} fields")
    return message


# --- storage encoding (blocks and certificates on their own, for a member's logs) -------------


def encode_block(block: Block) -> bytes:
    """The canonical bytes of one block (with its justify's signatures)."""
    return pack(_block_fields(block))


def decode_block(data: bytes) -> Block:
    """Parse ``encode_block``'s bytes; anything else raises ``MalformedMessage``."""
    try:
        fields = unpack(data)
    except Exception as error:  # msgpack's ExtraData/FormatError and friends
        raise MalformedMessage(f"not a packed block: {error}") from None
    return _decode_block(fields)


def encode_certificate(qc: QuorumCertificate) -> bytes:
    return pack(_qc_fields(qc))


def decode_certificate(data: bytes) -> QuorumCertificate:
    """Parse ``encode_certificate``'s bytes; anything else raises ``MalformedMessage``."""
    try:
        fields = unpack(data)
    except Exception as error:
        raise MalformedMessage(f"not a packed certificate: {error}") from None
    return _decode_qc(fields)
