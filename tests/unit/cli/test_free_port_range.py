"""Local committees take their ports below the kernel's ephemeral range, so an outgoing
connection cannot take one of them between the check and the member's bind."""

from __future__ import annotations

from asyncdex.cli.committee_cmd import _ephemeral_ports, free_port_range


def test_a_committees_ports_are_free_and_below_the_ephemeral_range() -> None:
    low, high = _ephemeral_ports()
    assert 0 < low <= high
    for _ in range(20):
        base = free_port_range(8)
        assert base >= 10_000 and base + 8 <= low
