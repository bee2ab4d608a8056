"""Committee incentives: a share of trading fees, paid to the members who led and certified
the blocks those fees were collected in. Pure integer functions; the engine applies them.

Invariants:
- The share of fees is ``collected * committee_fee_share_ppm // 1_000_000``, rounded down:
  the part below one micro-USDC stays in the venue's fee pool, never in the committee pool.
- Block weights: the proposer of block h earns ``LEAD_WEIGHT`` and each member whose
  signature is in block h's quorum certificate earns ``SIGN_WEIGHT``; that certificate is the
  justification of block h + 1, so block h + 1's ``CommitteeBlock`` marker carries it. A
  member that both led and signed earns both. Indexes outside the committee (and a negative
  bitmap) earn nothing.
- A payout gives member i ``pool * weight_i // total_weight``, rounded down, in member index
  order; the amounts sum to at most the pool, and what is left (less than one micro-USDC per
  recipient) stays in the committee pool for the next block. Nothing is created or lost.
"""

from __future__ import annotations

PPM = 1_000_000
LEAD_WEIGHT = 1
SIGN_WEIGHT = 1


def calculate_fee_share(collected: int, share_ppm: int) -> int:
    """The committee's part of ``collected`` fees (rounded down; 0 for nothing collected)."""
    if collected <= 0:
        return 0
    return collected * share_ppm // PPM


def calculate_block_weights(proposer: int, signers: int, members: int) -> dict[int, int]:
    """``{member index: weight}`` for a block led by ``proposer`` and certified by the members
    whose bits are set in ``signers``, in index order."""
    weights: dict[int, int] = {}
    if signers < 0:  # not a bitmap: names no one (a two's-complement reading would name all)
        signers = 0
    for index in range(members):
        weight = SIGN_WEIGHT if signers >> index & 1 else 0
        if index == proposer:
            weight += LEAD_WEIGHT
        if weight:
            weights[index] = weight
    return weights


def calculate_rewards(pool: int, weights: dict[int, int]) -> list[tuple[int, int]]:
    """``[(member index, amount)]`` paying ``pool`` out by ``weights``, rounded down; members
    whose share rounds to zero are left out."""
    total = sum(weights.values())
    if pool <= 0 or total == 0:
        return []
    rewards = []
    for index, weight in weights.items():
        amount = pool * weight // total
        if amount:
            rewards.append((index, amount))
    return rewards
