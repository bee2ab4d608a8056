"""The member store on real fsync'd files: recovery, torn tails, damage, intake resubmission."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from asyncdex.committee.store import (
    BLOCKS_DIR,
    COMMITTED_DIR,
    INTAKE_DIR,
    SAFETY_FILE,
    MemberStore,
    StoreCorruption,
)
from asyncdex.consensus import Committee, QuorumCertificate, SafetyState, Secp256k1Signer
from asyncdex.consensus.messages import GENESIS_QC, Block, vote_digest

SIGNERS = [Secp256k1Signer.from_seed(b"store-member-%d" % i) for i in range(4)]
COMMITTEE = Committee(tuple(signer.address for signer in SIGNERS))


def certify(block: Block) -> QuorumCertificate:
    digest = vote_digest(COMMITTEE.domain, block.view, block.hash)
    return QuorumCertificate(
        block.view, block.hash, tuple((i, SIGNERS[i].sign(digest)) for i in (0, 1, 2))
    )


def chain(length: int, items_per_block: int = 1) -> list[Block]:
    blocks: list[Block] = []
    justify = GENESIS_QC
    for height in range(1, length + 1):
        payload = tuple(b"item-%d-%d" % (height, i) for i in range(items_per_block))
        block = Block(height, height, justify, COMMITTEE.leader(height), payload, 1_000 + height)
        blocks.append(block)
        justify = certify(block)
    return blocks


def segment(directory: Path) -> Path:
    [path] = sorted(directory.glob("*.seg"))
    return path


def test_everything_written_comes_back_after_reopening(tmp_path: Path) -> None:
    blocks = chain(4)
    store, recovered = MemberStore.open(tmp_path)
    assert (recovered.safety, recovered.committed, recovered.journaled) == (None, [], [])
    state = SafetyState(4, 3, certify(blocks[3]))
    store.write_safety(state)
    store.append_blocks(blocks)
    store.flush_blocks()
    store.append_committed(blocks[:2], certify(blocks[2]))
    store.flush_committed()
    store.append_intake([b"item-1-0", b"late item"])
    store.flush_intake()
    store.close()

    store, recovered = MemberStore.open(tmp_path)
    assert recovered.safety == state
    assert recovered.committed == blocks[:2]
    assert recovered.journaled == blocks[2:]  # committed ones are not journaled again
    assert recovered.unordered_intake == [b"late item"]
    [first, _] = list(store.committed_entries(1))
    assert (first.block, first.certificate) == (blocks[0], certify(blocks[2]))
    assert [e.block.height for e in store.committed_entries(2)] == [2]
    store.close()


def test_intake_items_not_in_a_committed_block_are_returned_once_in_order(
    tmp_path: Path,
) -> None:
    store, _ = MemberStore.open(tmp_path)
    store.append_intake([b"b", b"item-1-0", b"a", b"b", b"c"])
    store.flush_intake()
    [block] = chain(1)
    store.append_committed([block], certify(block))
    store.flush_committed()
    store.close()
    _, recovered = MemberStore.open(tmp_path)
    assert recovered.unordered_intake == [b"b", b"a", b"c"]


@pytest.mark.parametrize("log", [COMMITTED_DIR, INTAKE_DIR, BLOCKS_DIR])
def test_a_torn_tail_is_cut_and_reported(tmp_path: Path, log: str) -> None:
    blocks = chain(3)
    store, _ = MemberStore.open(tmp_path)
    store.append_committed(blocks, certify(blocks[2]))
    store.append_blocks(blocks)
    store.append_intake([b"x", b"y"])
    store.flush_committed()
    store.flush_blocks()
    store.flush_intake()
    store.close()
    path = segment(tmp_path / log)
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # the last record's write never finished

    store, recovered = MemberStore.open(tmp_path)
    [repair] = recovered.repairs
    assert repair.truncated_segment == path and repair.truncated_bytes > 0
    expected = {
        COMMITTED_DIR: (blocks[:2], blocks[2:], [b"x", b"y"]),
        BLOCKS_DIR: (blocks, [], [b"x", b"y"]),
        INTAKE_DIR: (blocks, [], [b"x"]),
    }[log]
    assert (recovered.committed, recovered.journaled, recovered.unordered_intake) == expected
    store.close()


@pytest.mark.parametrize("log", [COMMITTED_DIR, INTAKE_DIR, BLOCKS_DIR])
def test_a_damaged_record_in_the_middle_is_refused_naming_file_and_offset(
    tmp_path: Path, log: str
) -> None:
    blocks = chain(3)
    store, _ = MemberStore.open(tmp_path)
    store.append_committed(blocks, certify(blocks[2]))
    store.append_blocks(blocks)
    store.append_intake([b"x" * 50, b"y" * 50, b"z" * 50])
    store.flush_committed()
    store.flush_blocks()
    store.flush_intake()
    store.close()
    path = segment(tmp_path / log)
    data = bytearray(path.read_bytes())
    offset = 16 + 16 + 10  # segment header, first record's header, into its payload
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(StoreCorruption) as refused:
        MemberStore.open(tmp_path)
    assert refused.value.path == path and refused.value.offset == 16
    assert str(path) in str(refused.value)
    assert path.read_bytes() == bytes(data)  # nothing was cut or changed
    # the directory is released: a later open (after repair) is not locked out
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    MemberStore.open(tmp_path)[0].close()


def test_the_newest_safety_state_survives_reopening_and_further_writes(tmp_path: Path) -> None:
    store, _ = MemberStore.open(tmp_path)
    for view in range(1, 6):
        store.write_safety(SafetyState(view, view, GENESIS_QC))
    store.close()
    store, recovered = MemberStore.open(tmp_path)
    assert recovered.safety == SafetyState(5, 5, GENESIS_QC)
    store.write_safety(SafetyState(6, 5, GENESIS_QC))  # into the older slot, not the newest
    store.close()
    assert MemberStore.open(tmp_path)[1].safety == SafetyState(6, 5, GENESIS_QC)


def test_a_torn_safety_write_leaves_the_previous_state(tmp_path: Path) -> None:
    store, _ = MemberStore.open(tmp_path)
    store.write_safety(SafetyState(7, 5, GENESIS_QC))
    store.write_safety(SafetyState(8, 5, GENESIS_QC))
    store.close()
    path = tmp_path / SAFETY_FILE
    data = bytearray(path.read_bytes())
    newest = 0  # the second write went to slot 0 (the first, creating the file, to slot 1)
    data[newest + 30] ^= 0xFF  # a write that never completed: the vote it guarded never left
    path.write_bytes(bytes(data))
    store, recovered = MemberStore.open(tmp_path)
    assert recovered.safety == SafetyState(7, 5, GENESIS_QC)
    store.close()


def test_a_safety_file_with_no_valid_slot_is_refused(tmp_path: Path) -> None:
    store, _ = MemberStore.open(tmp_path)
    store.write_safety(SafetyState(7, 5, GENESIS_QC))
    store.write_safety(SafetyState(8, 5, GENESIS_QC))
    store.close()
    path = tmp_path / SAFETY_FILE
    data = bytearray(path.read_bytes())
    for slot in (0, len(data) // 2):
        data[slot + 30] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruption, match="no valid safety slot") as refused:
        MemberStore.open(tmp_path)
    assert refused.value.path == path


def test_a_safety_state_larger_than_its_slots_moves_to_a_bigger_file(tmp_path: Path) -> None:
    store, _ = MemberStore.open(tmp_path)
    store.write_safety(SafetyState(1, 1, GENESIS_QC))
    size = (tmp_path / SAFETY_FILE).stat().st_size
    huge = QuorumCertificate(9, bytes(32), tuple((i, bytes(65)) for i in range(400)))
    store.write_safety(SafetyState(9, 9, huge))
    assert (tmp_path / SAFETY_FILE).stat().st_size > size
    store.write_safety(SafetyState(10, 9, huge))
    store.close()
    assert MemberStore.open(tmp_path)[1].safety == SafetyState(10, 9, huge)


def test_journaled_blocks_without_a_safety_file_give_a_state_that_cannot_vote_again(
    tmp_path: Path,
) -> None:
    blocks = chain(3)
    store, _ = MemberStore.open(tmp_path)
    store.append_blocks(blocks)  # a crash after the block journal, before the safety file
    store.flush_blocks()
    store.close()
    _, recovered = MemberStore.open(tmp_path)
    assert recovered.safety is not None
    assert recovered.safety.last_voted_view == 3
    assert recovered.safety.locked_qc == certify(blocks[1])


def test_a_committed_log_that_is_not_a_chain_is_refused(tmp_path: Path) -> None:
    blocks = chain(2)
    stranger = replace(blocks[1], payload=(b"another",), justify=certify(chain(1, 2)[0]))
    store, _ = MemberStore.open(tmp_path)
    store.append_committed([blocks[0], stranger], certify(blocks[1]))
    store.flush_committed()
    store.close()
    with pytest.raises(StoreCorruption, match="does not extend") as refused:
        MemberStore.open(tmp_path)
    assert refused.value.record == 2


def test_committed_blocks_and_ordered_items_are_deleted_a_segment_at_a_time(
    tmp_path: Path,
) -> None:
    blocks = chain(40, items_per_block=3)
    small = 2_000  # bytes per segment: a few blocks or a few dozen items each
    store, _ = MemberStore.open(tmp_path, segment_bytes=small)
    store.append_blocks(blocks)
    store.flush_blocks()
    store.append_intake([item for block in blocks for item in block.payload])
    store.append_intake([b"never ordered", b"item-40-0"])
    store.flush_intake()
    store.append_committed(blocks[:30], certify(blocks[30]))
    store.flush_committed()
    store.close()
    segments_before = len(list((tmp_path / BLOCKS_DIR).glob("*.seg")))
    intake_before = len(list((tmp_path / INTAKE_DIR).glob("*.seg")))

    store, recovered = MemberStore.open(tmp_path, segment_bytes=small)
    assert recovered.journaled == blocks[30:]
    assert recovered.unordered_intake[-1] == b"never ordered"
    store.close()
    assert len(list((tmp_path / BLOCKS_DIR).glob("*.seg"))) < segments_before
    assert len(list((tmp_path / INTAKE_DIR).glob("*.seg"))) < intake_before
    # what is left still opens to the same state, and appends continue the sequence
    store, again = MemberStore.open(tmp_path, segment_bytes=small)
    assert (again.journaled, again.unordered_intake) == (
        recovered.journaled,
        recovered.unordered_intake,
    )
    store.append_blocks(blocks[:1])
    store.flush_blocks()
    store.close()
    assert MemberStore.open(tmp_path, segment_bytes=small)[1].journaled == blocks[30:]
