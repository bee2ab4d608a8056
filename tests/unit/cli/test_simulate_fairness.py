"""The sandwich simulation: a leader that reads plaintext gains on a continuous market, gains
far less in a batch auction, and gains exactly nothing once intents are sealed."""

from __future__ import annotations

import json

import pytest

from asyncdex.cli.main import main
from asyncdex.cli.simulate_fairness import (
    ATTACKER,
    SIGNERS,
    Sealer,
    build_scenario,
    leader_view,
    run_seed,
    summarize,
    wire_intent,
)
from asyncdex.messages.commands import PlaceOrder
from asyncdex.signing.intents import encode_signed_intent, sign_intent

SEEDS = range(3)


def test_a_reordering_leader_profits_on_a_continuous_market() -> None:
    for seed in SEEDS:
        attacked = run_seed(seed, "continuous")
        baseline = run_seed(seed, "continuous", attacker=False)
        assert attacked.profit > 0, seed
        assert attacked.attacks.get("sandwich", 0) + attacked.attacks.get("front-run", 0) > 0
        # what the leader takes, the victims pay: same fills, at worse prices
        assert attacked.victim_filled == baseline.victim_filled
        assert attacked.victim_cost - baseline.victim_cost >= attacked.profit // 2


def test_one_clearing_price_leaves_a_plaintext_leader_far_less() -> None:
    continuous = summarize("continuous", SEEDS)
    batch = summarize("batch", SEEDS)
    assert batch.profit_max < continuous.profit_mean
    # the leader's only gain in a batch is the liquidity it adds, which lowers the victims' price
    assert batch.victim_cost <= batch.victim_cost_baseline
    assert set(batch.attacks) <= {"liquidity", "sandwich", "front-run"}


def test_sealed_intents_in_a_batch_auction_leave_the_leader_nothing() -> None:
    # the leader's view of real envelopes is their headers (next test): handed the same
    # headers without the cryptography, 200 seeds run in seconds
    for seed in range(200):
        result = run_seed(seed, "sealed", real_sealing=False)
        assert result.profit == 0, seed
        assert result.attacker_orders == 0 and not result.attacks, seed


def test_real_envelopes_show_the_leader_what_the_header_model_does() -> None:
    for seed in range(2):
        assert run_seed(seed, "sealed") == run_seed(seed, "sealed", real_sealing=False)


def test_a_sealed_envelope_opens_only_with_its_epoch_key_to_the_same_command() -> None:
    block = build_scenario(3).blocks[0]
    intent = next(i for i in block if type(i.command) is PlaceOrder)
    order = intent.command
    assert isinstance(order, PlaceOrder)
    sealer = Sealer(3)
    sealed = sealer.seal(0, intent)
    assert sealer.header_of(sealed) == (intent.account, intent.nonce, 0, None)
    signed = sign_intent(SIGNERS[intent.account], Sealer.DOMAIN, wire_intent(intent))
    assert encode_signed_intent(signed) not in sealed  # the signed body is not in clear
    assert sealer.reveal(0, [sealed]) == [intent.command]
    with pytest.raises(RuntimeError, match="wrong_epoch"):
        sealer.reveal(1, [sealed])  # the next block's key does not open it


def test_the_sealed_leader_sees_headers_only() -> None:
    block = build_scenario(7).blocks[0]
    assert any(type(intent.command) is PlaceOrder for intent in block)
    sealed = leader_view("sealed", block)
    assert [(v.account, v.nonce) for v in sealed] == [(i.account, i.nonce) for i in block]
    assert all(v.command is None for v in sealed)
    plain = leader_view("batch", block)
    assert [v.command for v in plain] == [i.command for i in block]


def test_sealed_venue_runs_exactly_as_without_a_leader() -> None:
    for seed in SEEDS:
        sealed = run_seed(seed, "sealed")
        unattacked = run_seed(seed, "batch", attacker=False)
        assert (sealed.victim_cost, sealed.victim_filled) == (
            unattacked.victim_cost,
            unattacked.victim_filled,
        )


def test_a_seed_replays_to_the_same_result() -> None:
    assert run_seed(11, "continuous") == run_seed(11, "continuous")
    assert build_scenario(11) == build_scenario(11)
    assert build_scenario(11) != build_scenario(12)


def test_the_leader_never_targets_itself() -> None:
    result = run_seed(1, "continuous")
    assert ATTACKER not in {intent.account for b in build_scenario(1).blocks for intent in b}
    assert result.attacker_orders > 0


def test_unknown_venue_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown venue 'fcfs'"):
        run_seed(0, "fcfs")


def test_command_prints_the_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "fairness", "--seeds", "1", "--start", "4", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["seeds"] == 1 and summary["first_seed"] == 4
    venues = {v["venue"]: v for v in summary["venues"]}
    assert set(venues) == {"continuous", "batch", "sealed"}
    assert venues["sealed"]["attacker_profit_max_micro_usdc"] == 0
    assert venues["continuous"]["attacker_profit_max_micro_usdc"] > 0
    assert any(line.strip().startswith("continuous") for line in out)


def test_command_refuses_no_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "fairness", "--seeds", "0"]) == 2
    assert "--seeds is at least 1" in capsys.readouterr().err


def test_demo_fair_narrates_the_leader_and_sums_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--fair", "--seed", "1", "--json"]) == 0
    out = capsys.readouterr().out
    assert "sees a sealed envelope" in out and "reads the order and inserts" in out
    venues = {v["venue"]: v for v in json.loads(out.strip().splitlines()[-1])["venues"]}
    assert venues["continuous"]["attacker_profit_max_micro_usdc"] > 0
    assert venues["sealed"]["attacker_profit_max_micro_usdc"] == 0
    assert (
        venues["sealed"]["victim_cost_micro_usdc"]
        == (venues["sealed"]["victim_cost_without_attacker_micro_usdc"])
    )
