"""``asyncdex demo --fair``: a scripted front-running leader against the same traders on a
continuous market, a batch-auction market, and a batch auction with sealed intents, and what
it gained on each.

Invariants: one process, deterministic for its ``--seed`` (it is one seed of
``asyncdex simulate fairness``, see :mod:`asyncdex.cli.simulate_fairness`): the real engine,
real sealed envelopes (threshold IBE, a key from the in-process DKG of a 4-member committee,
each block's epoch key from two members' shares once its order is fixed), and a leader that
orders every block. The committee's network runtime is ``asyncdex committee``; here its
members' part (ordering, then releasing shares) is played in-process so the leader can be
scripted. With ``--json`` the last line is the summary as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

from asyncdex.cli.simulate_fairness import (
    BLOCK_MS,
    BLOCKS,
    VENUES,
    VICTIMS,
    BlockOutcome,
    SeedResult,
    build_scenario,
    format_table,
    format_usd,
    run_seed,
    summarize_results,
)
from asyncdex.messages.commands import PlaceOrder
from asyncdex.types.numeric import format_scaled

SHOWN_BLOCKS = 4
PLAN_NAMES = {
    "sandwich": "a sandwich",
    "front-run": "a front-run",
    "liquidity": "a liquidity offer sized to the victim",
}
SIZE_DECIMALS = 4  # ETH in the simulation: sizes in 10^-4 ETH, prices in cents
PRICE_DECIMALS = 2


def _eth(size: int) -> str:
    return format_scaled(size, SIZE_DECIMALS)


def _usd(price: int) -> str:
    return "$" + format_scaled(price, PRICE_DECIMALS)


def describe_victim(outcome: BlockOutcome) -> str:
    order = outcome.victim.command
    assert type(order) is PlaceOrder
    who = f"victim-{VICTIMS.index(outcome.victim.account)}"
    side = "buys" if order.is_buy else "sells"
    bound = "up to" if order.is_buy else "down to"
    return f"{who} {side} {_eth(order.size)} ETH (IOC) {bound} {_usd(order.price)}"


def describe_leader(venue: str, outcome: BlockOutcome) -> str:
    if outcome.seen.command is None:
        seen = (
            f"sees a sealed envelope: account 0x{outcome.seen.account.hex()[:8]}..., "
            f"nonce {outcome.seen.nonce}, market {outcome.seen.market}; side, price and size "
            "unknown until the block is certified"
        )
    else:
        seen = "reads the order"
    plan = outcome.plan
    if plan is None:
        return f"{venue:<10}: the leader {seen}; it adds nothing ({format_usd(outcome.gain)})"
    orders = [c for c in (*plan.before, *plan.after) if type(c) is PlaceOrder]
    steps = ", ".join(
        f"{'buy' if c.is_buy else 'sell'} {_eth(c.size)} @ {_usd(c.price)}" for c in orders
    )
    return (
        f"{venue:<10}: the leader {seen} and inserts {PLAN_NAMES[plan.kind]} ({steps}): "
        f"{format_usd(outcome.gain)}"
    )


def cmd_demo_fair(args: argparse.Namespace) -> int:
    seed: int = args.seed
    if seed < 0:
        print("asyncdex demo: --seed is at least 0", file=sys.stderr)
        return 2
    scenario = build_scenario(seed)
    print(
        f"asyncdex demo --fair: seed {seed}, ETH at {_usd(scenario.oracle_price)}, "
        f"{BLOCKS} blocks of {BLOCK_MS} ms; the leader orders every block and may insert "
        "its own orders (one process: engine, sealed envelopes and the committee's key "
        "shares; see docs/fairness.md)",
        flush=True,
    )
    attacked: dict[str, SeedResult] = {}
    baseline: dict[str, SeedResult] = {}
    for venue in VENUES:
        attacked[venue] = run_seed(seed, venue)
        baseline[venue] = run_seed(seed, venue, attacker=False, real_sealing=False)
    victims = attacked["continuous"].blocks
    for index, outcome in enumerate(victims[:SHOWN_BLOCKS]):
        print(f"\nblock {outcome.number}: {describe_victim(outcome)}")
        for venue in VENUES:
            print("  " + describe_leader(venue, attacked[venue].blocks[index]))
    if len(victims) > SHOWN_BLOCKS:
        print(f"\n... {len(victims) - SHOWN_BLOCKS} more blocks with a victim")
    summaries = [summarize_results(venue, [attacked[venue]], [baseline[venue]]) for venue in VENUES]
    print("\nwhat the leader gained (marked to the oracle, fees included), and what victims paid:")
    for line in format_table(summaries):
        print("  " + line)
    sealed = attacked["sealed"]
    print(
        f"\nsealed intents + batch auction: the leader gained {format_usd(sealed.profit)}: "
        "it orders envelopes it cannot read, and once they open the batch is closed"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "demo": "fair",
                    "seed": seed,
                    "blocks": BLOCKS,
                    "venues": [summary.as_json() for summary in summaries],
                }
            )
        )
    return 0 if sealed.profit == 0 else 1
