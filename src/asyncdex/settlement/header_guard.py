"""The one rule that keeps a member's bond safe: never sign two headers for one batch number.

Invariants:
- ``check_and_record(batch_number, digest)`` returns only once ``(batch_number, digest)`` is
  durable (written and fsync'd, the directory too when the file is new); the caller signs
  after it returns. A crash at any point therefore leaves either no record (and no signature
  ever left the member) or a durable record.
- A batch number is signed over at most one digest, across restarts: signing again over the
  recorded digest is allowed (secp256k1 signing is deterministic, so it is the same signature);
  any other digest for a recorded batch number raises ``ConflictingHeader`` and records nothing.
- Batch numbers are signed in increasing order, so "recorded" has a cheap conservative reading:
  a batch number at or below the highest recorded one whose own record is missing (a damaged
  record) is refused too. Refusing costs at most this member's signature on that batch (the
  others still form a quorum); signing could cost its bond.
- A damaged file never stops a restart: records are fixed-size with a CRC32; a torn tail (a
  write the crash interrupted, so never followed by a signature) is cut off, a damaged record
  in the middle is skipped and counted in ``damaged``, and the rule above covers its number.
- A failed write or fsync stops the log for good (as the journal does): the file may hold a
  partial record, so nothing more is recorded, and so nothing more is signed, until a restart
  has cut the torn tail off.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

DIGEST_SIZE = 32
_NUMBER_SIZE = 8
_RECORD_SIZE = _NUMBER_SIZE + DIGEST_SIZE + 4


class ConflictingHeader(Exception):
    """Signing ``digest`` for ``batch_number`` would equivocate (slashable on chain)."""

    def __init__(self, batch_number: int, signed: bytes | None, digest: bytes) -> None:
        previous = "an unreadable record" if signed is None else f"0x{signed.hex()}"
        super().__init__(
            f"batch {batch_number}: already signed {previous}, refusing to sign 0x{digest.hex()}"
        )
        self.batch_number = batch_number
        self.signed = signed
        self.digest = digest


class SignedHeaderLog:
    """The fsync'd record of every batch header this member signed (see module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.signed: dict[int, bytes] = {}
        self.highest = 0
        self.damaged = 0
        self.failed: OSError | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._load()
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the member's life
        if created:
            os.fsync(self._file.fileno())
            _fsync_directory(self.path.parent)

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        whole = len(data) - len(data) % _RECORD_SIZE
        for start in range(0, whole, _RECORD_SIZE):
            record = data[start : start + _RECORD_SIZE]
            body, checksum = record[:-4], record[-4:]
            if zlib.crc32(body).to_bytes(4, "big") != checksum:
                self.damaged += 1
                continue
            number = int.from_bytes(body[:_NUMBER_SIZE], "big")
            self.signed.setdefault(number, body[_NUMBER_SIZE:])
            self.highest = max(self.highest, number)
        if whole != len(data):
            with open(self.path, "r+b") as torn:
                torn.truncate(whole)
                os.fsync(torn.fileno())

    def check(self, batch_number: int, digest: bytes) -> bool:
        """True when ``digest`` was already recorded for ``batch_number``; False when it may be
        recorded; ``ConflictingHeader`` when signing it would equivocate."""
        if len(digest) != DIGEST_SIZE:
            raise ValueError(f"a header digest is {DIGEST_SIZE} bytes, got {len(digest)}")
        if not 0 < batch_number < 1 << 64:
            raise ValueError(f"batch number {batch_number} outside 1..2**64-1")
        signed = self.signed.get(batch_number)
        if signed == digest:
            return True
        if signed is not None or batch_number <= self.highest:
            raise ConflictingHeader(batch_number, signed, digest)
        return False

    def check_and_record(self, batch_number: int, digest: bytes) -> None:
        """Make ``(batch_number, digest)`` durable, or raise ``ConflictingHeader``."""
        if self.check(batch_number, digest):
            return
        if self.failed is not None:
            raise OSError(f"the signed-header log failed earlier: {self.failed}")
        body = batch_number.to_bytes(_NUMBER_SIZE, "big") + digest
        try:
            self._file.write(body + zlib.crc32(body).to_bytes(4, "big"))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            self.failed = exc
            raise
        self.signed[batch_number] = digest
        self.highest = batch_number

    def close(self) -> None:
        self._file.close()


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
