"""The committee: who the members are, how many may be faulty, who leads which view.

Invariants:
- Members are an ordered tuple of distinct 20-byte addresses; a member is referred to by its
  index in that tuple everywhere in consensus messages and certificates.
- ``n = len(members) >= 1``, ``f = (n - 1) // 3`` and a quorum is ``n - f`` (``2f + 1`` when
  ``n = 3f + 1``): any two quorums share at least ``f + 1`` members, hence one honest member.
- The leader of view ``v`` is ``members[v % n]`` (round-robin rotation): every honest member
  leads one view in every ``n`` consecutive views, which is what lets an honest member
  include items that faulty leaders leave out.
- ``domain`` separates signatures of different committees (chain, contract, epoch): a
  signature made for one committee never verifies in another.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Committee:
    members: tuple[bytes, ...]
    domain: bytes = b"asyncdex/consensus/v1"

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a committee has at least one member")
        if any(len(address) != 20 for address in self.members):
            raise ValueError("member addresses are 20 bytes")
        if len(set(self.members)) != len(self.members):
            raise ValueError("member addresses must be distinct")

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def max_faulty(self) -> int:
        return (len(self.members) - 1) // 3

    @property
    def quorum(self) -> int:
        return len(self.members) - self.max_faulty

    def leader(self, view: int) -> int:
        return view % len(self.members)

    def index_of(self, address: bytes) -> int:
        try:
            return self.members.index(address)
        except ValueError:
            raise ValueError(f"0x{address.hex()} is not a member of this committee") from None
