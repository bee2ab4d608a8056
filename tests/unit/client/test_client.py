"""The SDK's intents are what the node's intake accepts, mapped to the commands meant.

Every builder's output is signed by the client, serialized as the client sends it, and run
through the node's own stateless intake (``decode_body`` + ``verify_batch``, no server): the
resulting ``Signed`` command, signer and intent id are checked field by field. Decimal input
is converted exactly or refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from asyncdex.client import (
    AgentNotAllowed,
    AgentWallet,
    AmountError,
    AsyncClient,
    Client,
    InvalidKey,
    Markets,
    Trigger,
    UnknownMarket,
    Wallet,
)
from asyncdex.client.builder import client_id_bytes, time_ms
from asyncdex.client.markets import MarketInfo, price_units, size_units, usdc_units
from asyncdex.client.nonces import NonceSource
from asyncdex.messages import commands as engine
from asyncdex.sequencer.sequencer import Submission
from asyncdex.signing.intake import decode_body, verify_batch
from asyncdex.signing.intents import (
    ALL_MARKETS,
    Intent,
    MalformedIntent,
    OrderType,
    PlaceOrder,
    SignedIntent,
    TimeInForce,
    TriggerKind,
    asyncdex_domain,
    signed_intent_to_json,
)
from asyncdex.types.market import MarketSpec

CHAIN_ID = 31337
CONTRACT = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
DOMAIN = asyncdex_domain(CHAIN_ID, bytes.fromhex(CONTRACT[2:]))
MASTER = Wallet.from_hex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
AGENT_KEY = bytes(range(1, 33))
AGENT = AgentWallet(AGENT_KEY, MASTER.account)
BTC = MarketSpec(0, "BTC", 5, tick=10, lot=10)  # price in $0.1, size in 10^-5 BTC
ETH = MarketSpec(1, "ETH", 4, tick=1, lot=10)  # price in $0.01, size in 10^-4 ETH
MARKETS = Markets([BTC, ETH])
T0 = 1_767_225_600_000


class FixedClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def make_client(wallet: Wallet | AgentWallet = MASTER, **options: Any) -> AsyncClient:
    # No request is made in this file: the base URL is never dialled.
    options.setdefault("nonces", NonceSource())
    return AsyncClient("http://127.0.0.1:9", wallet, CHAIN_ID, CONTRACT, MARKETS, **options)


def through_intake(client: AsyncClient, intents: Sequence[Intent]) -> list[Submission]:
    """Sign as the client does, serialize as it sends, and let the node's intake judge."""
    signed = [client.sign(intent) for intent in intents]
    body = json.dumps({"intents": [signed_intent_to_json(s) for s in signed]}).encode()
    return verify_batch(DOMAIN, decode_body(body, "application/json"))


def only(client: AsyncClient, intent: Intent) -> Submission:
    (submission,) = through_intake(client, [intent])
    assert submission.intent_id == bytes.fromhex(client.intent_id(intent)[2:])
    return submission


# ---------------------------------------------------------------------------------------------
# Every kind through the intake


def test_limit_order_from_decimals_maps_to_the_engine_order() -> None:
    client = make_client()
    intent = client.build.place_order("BTC", "buy", "0.001", "60000.1", client_id=7)
    submission = only(client, intent)
    command = submission.command
    assert isinstance(command, engine.Signed)
    assert command.signer == MASTER.address
    assert command.nonce == intent.nonce and command.expires_after == 0
    assert command.command == engine.PlaceOrder(
        MASTER.account, 0, True, 600_001, 100, TimeInForce.GTC, OrderType.LIMIT, False, 7,
        0, 0, TriggerKind.NONE,
    )  # fmt: skip


def test_every_action_is_accepted_in_one_batch_with_increasing_nonces() -> None:
    client = make_client()
    build = client.build
    intents: list[Intent] = [
        build.place_order("ETH", "sell", "1.5", "3000.25", tif="ALO", expiry=T0 + 60_000),
        build.place_order(1, "buy", 20, 300_000, tif="IOC", reduce_only=True),
        build.market_order("BTC", "sell", "0.01", worst_price="59000"),
        build.place_order("BTC", "sell", 100, trigger=Trigger("stop", "55000")),
        build.cancel("BTC", 12),
        build.cancel_by_client_id("ETH", "0x" + "00" * 8 + "0123456789abcdef"),
        build.cancel_all("ETH"),
        build.cancel_all(),
        build.modify("BTC", 12, "60001", "0.002"),
        build.schedule_cancel(T0 + 30_000),
        build.schedule_cancel(None),
        build.set_leverage("BTC", 10, isolated=True),
        build.update_isolated_margin("BTC", "-12.5"),
        build.withdraw("250.000001"),
        build.approve_agent(AGENT, T0 + 86_400_000, name="bot"),
    ]
    submissions = through_intake(client, intents)
    nonces = [intent.nonce for intent in intents]
    assert nonces == sorted(set(nonces))
    commands = [s.command.command for s in submissions if isinstance(s.command, engine.Signed)]
    account = MASTER.account
    assert commands == [
        engine.PlaceOrder(account, 1, False, 300_025, 15_000, TimeInForce.ALO, OrderType.LIMIT,
                          False, 0, T0 + 60_000, 0, TriggerKind.NONE),
        engine.PlaceOrder(account, 1, True, 300_000, 20, TimeInForce.IOC, OrderType.LIMIT,
                          True, 0, 0, 0, TriggerKind.NONE),
        engine.PlaceOrder(account, 0, False, 590_000, 1_000, TimeInForce.IOC, OrderType.MARKET,
                          False, 0, 0, 0, TriggerKind.NONE),
        engine.PlaceOrder(account, 0, False, 0, 100, TimeInForce.IOC, OrderType.MARKET,
                          False, 0, 0, 550_000, TriggerKind.STOP),
        engine.CancelOrder(account, 0, 12),
        engine.CancelByClientId(account, 1, 0x0123456789ABCDEF),
        engine.CancelAll(account, 1),
        engine.CancelAll(account, engine.ALL_MARKETS),
        engine.ModifyOrder(account, 0, 12, 600_010, 200),
        engine.ScheduleCancel(account, T0 + 30_000),
        engine.ScheduleCancel(account, 0),
        engine.SetLeverage(account, 0, 10, True),
        engine.UpdateIsolatedMargin(account, 0, -12_500_000),
        engine.Withdraw(account, 250_000_001),
        engine.ApproveAgent(account, AGENT.address, T0 + 86_400_000),
    ]  # fmt: skip
    assert all(s.command.signer == MASTER.address for s in submissions)  # type: ignore[union-attr]


def test_agent_signs_for_its_master() -> None:
    client = make_client(AGENT)
    intent = client.build.place_order("BTC", "sell", "0.0002", "61000")
    command = only(client, intent).command
    assert isinstance(command, engine.Signed)
    assert command.signer == AGENT.address != MASTER.account
    assert command.command.account == MASTER.account  # type: ignore[union-attr]


def test_agent_withdrawal_is_built_for_the_engine_to_judge() -> None:
    # Stateless intake accepts it; the engine rejects it (AGENT_NOT_ALLOWED): one rule, one place.
    client = make_client(AGENT)
    command = only(client, client.build.withdraw(1_000_000)).command
    assert isinstance(command, engine.Signed) and command.signer == AGENT.address


def test_invalid_agent_cannot_build_an_approval() -> None:
    client = make_client(AGENT)
    with pytest.raises(AgentNotAllowed):
        client.build.approve_agent(b"\x01" * 20)


def test_nonces_are_per_signer_and_agents_have_their_own() -> None:
    nonces = NonceSource(FixedClock())
    master = make_client(MASTER, nonces=nonces)
    agent = make_client(AGENT, nonces=nonces)
    assert master.build.cancel_all().nonce == T0
    assert agent.build.cancel_all().nonce == T0  # another signer: may repeat the value
    assert master.build.cancel_all().nonce == T0 + 1


def test_intent_ttl_sets_a_deadline_and_an_explicit_one_wins() -> None:
    client = make_client(intent_ttl=5.0)
    clock = FixedClock()
    client.build.clock = clock
    assert client.build.cancel_all().expires_after == T0 + 5_000
    deadline = datetime.fromtimestamp(T0 / 1000, UTC) + timedelta(seconds=1)
    assert client.build.cancel_all(expires_after=deadline).expires_after == T0 + 1_000
    assert make_client().build.cancel_all().expires_after == 0


def test_market_order_without_price_is_immediate() -> None:
    build = make_client().build
    gtc = build.place_order("BTC", "buy", 100)
    assert (gtc.order_type, gtc.tif, gtc.price) == (OrderType.MARKET, TimeInForce.IOC, 0)
    fok = build.market_order("BTC", "buy", 100, tif="FOK")
    assert (fok.order_type, fok.tif) == (OrderType.MARKET, TimeInForce.FOK)
    with pytest.raises(ValueError, match="post-only"):
        build.place_order("BTC", "buy", 100, tif="ALO")
    with pytest.raises(ValueError, match="IOC or FOK"):
        build.market_order("BTC", "buy", 100, tif="GTC")  # type: ignore[arg-type]


def test_take_profit_limit_order() -> None:
    intent = make_client().build.place_order(
        "ETH", "sell", 10, "3100", trigger=Trigger("take_profit", "3100.5")
    )
    assert isinstance(intent, PlaceOrder)
    assert (intent.order_type, intent.price) == (OrderType.LIMIT, 310_000)
    assert (intent.trigger_kind, intent.trigger_price) == (TriggerKind.TAKE_PROFIT, 310_050)


def test_wrong_domain_gives_other_ids_and_recovers_a_stranger() -> None:
    # What DomainMismatch guards against: the node computes ids under its own domain.
    other = AsyncClient(
        "http://127.0.0.1:9", MASTER, CHAIN_ID + 1, CONTRACT, MARKETS, nonces=NonceSource()
    )
    intent = other.build.cancel_all()
    (submission,) = through_intake(other, [intent])
    assert "0x" + submission.intent_id.hex() != other.intent_id(intent)
    assert submission.command.signer != MASTER.address  # type: ignore[union-attr]


def test_presigned_intents_are_sent_as_signed() -> None:
    client = make_client()
    signed = client.sign(client.build.cancel("ETH", 3))
    assert isinstance(signed, SignedIntent)
    assert client.intent_id(signed) == client.intent_id(signed.intent)


# ---------------------------------------------------------------------------------------------
# Exact decimal conversion


BTC_INFO = MarketInfo(0, "BTC", 5)  # sizes 10^-5, prices 10^-1
ETH_INFO = MarketInfo(1, "ETH", 4)  # sizes 10^-4, prices 10^-2


@pytest.mark.parametrize(
    ("market", "price", "units"),
    [
        (BTC_INFO, "60000.1", 600_001),
        (BTC_INFO, Decimal("60000.10"), 600_001),  # trailing zeros are not extra places
        (BTC_INFO, "6E+4", 600_000),
        (ETH_INFO, "3000.25", 300_025),
        (ETH_INFO, " 0.01 ", 1),
        (ETH_INFO, 300_025, 300_025),  # ints are engine units already
    ],
)
def test_prices_convert_exactly(market: MarketInfo, price: Any, units: int) -> None:
    assert price_units(market, price) == units


@pytest.mark.parametrize(
    ("market", "size", "units"),
    [
        (BTC_INFO, "0.00001", 1),
        (BTC_INFO, "1", 100_000),  # a decimal is whole BTC ...
        (BTC_INFO, 1, 1),  # ... an int is 10^-5 BTC
        (ETH_INFO, Decimal("2.5000"), 25_000),
    ],
)
def test_sizes_convert_exactly(market: MarketInfo, size: Any, units: int) -> None:
    assert size_units(market, size) == units


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("60000.05", "more than 1 decimals"),  # BTC prices have one decimal place
        (Decimal("60000.01"), "more than 1 decimals"),
        (60000.1, "float"),
        ("sixty", "not a decimal number"),
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
        ("-1", "negative"),
        (-1, "negative"),
        (True, "bool"),
        (None, "NoneType"),
    ],
)
def test_invalid_price_is_refused_not_rounded(value: Any, message: str) -> None:
    with pytest.raises(AmountError, match=message) as caught:
        price_units(BTC_INFO, value)
    assert caught.value.field == "price"


def test_invalid_size_with_too_many_places() -> None:
    with pytest.raises(AmountError, match="more than 5 decimals"):
        size_units(BTC_INFO, "0.000001")


def test_invalid_decimal_without_market_decimals() -> None:
    with pytest.raises(AmountError, match="sz_decimals"):
        size_units(None, "0.1")
    assert size_units(None, 7) == 7  # ints need no decimals


def test_usdc_amounts() -> None:
    assert usdc_units("1.000001") == 1_000_001
    assert usdc_units(5) == 5
    assert usdc_units("-2.5", field="delta", signed=True) == -2_500_000
    with pytest.raises(AmountError, match="negative"):
        usdc_units("-2.5")
    with pytest.raises(AmountError, match="more than 6 decimals"):
        usdc_units("0.0000001")


def test_builders_refuse_inexact_values_before_taking_a_nonce() -> None:
    nonces = NonceSource(FixedClock())
    client = make_client(nonces=nonces)
    with pytest.raises(AmountError):
        client.build.place_order("BTC", "buy", "0.001", "60000.05")
    with pytest.raises(AmountError):
        client.build.modify("ETH", 1, "3000.001", 10)
    assert nonces.last(MASTER.address) is None


def test_invalid_values_out_of_wire_range_name_their_field() -> None:
    build = make_client().build
    with pytest.raises(MalformedIntent) as caught:
        build.place_order("BTC", "buy", 2**64, 600_000)
    assert caught.value.field == "size"
    with pytest.raises(MalformedIntent) as caught:
        build.set_leverage("BTC", 0)
    assert caught.value.field == "leverage"


def test_invalid_market_side_and_tif() -> None:
    build = make_client().build
    with pytest.raises(UnknownMarket):
        build.cancel("DOGE", 1)
    with pytest.raises(ValueError, match="side"):
        build.place_order("BTC", "long", 100, 600_000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tif"):
        build.place_order("BTC", "buy", 100, 600_000, tif="GTD")  # type: ignore[arg-type]
    # A market id the client was not told of still works with integer units.
    assert build.cancel(7, 1).market == 7
    assert build.cancel_all(None).market == ALL_MARKETS


# ---------------------------------------------------------------------------------------------
# Client ids, times, keys


def test_client_id_forms() -> None:
    assert client_id_bytes(None) == bytes(16)
    assert client_id_bytes(0x0102) == bytes(14) + b"\x01\x02"
    assert client_id_bytes(b"\x05" * 16) == b"\x05" * 16
    assert client_id_bytes("0x" + "ab" * 16) == b"\xab" * 16
    for bad in (-1, 2**128, b"\x01" * 15, "0x1234", "ab" * 16, "0x" + "zz" * 16):
        with pytest.raises(ValueError):
            client_id_bytes(bad)
    with pytest.raises(ValueError, match="none"):
        make_client().build.cancel_by_client_id("BTC", 0)


def test_times() -> None:
    assert time_ms(T0, field="t") == T0
    aware = datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert time_ms(aware, field="t") == T0
    assert time_ms(datetime(2026, 1, 1, 0, 0, 0, 999, tzinfo=UTC), field="t") == T0  # floors
    with pytest.raises(ValueError, match="naive"):
        time_ms(datetime(2026, 1, 1), field="t")
    with pytest.raises(ValueError, match="negative"):
        time_ms(-1, field="t")


def test_keys_from_hex_and_file(tmp_path: Path) -> None:
    key_hex = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
    path = tmp_path / "key.hex"
    path.write_text(f"0x{key_hex}\n")
    assert Wallet.from_file(path).account == MASTER.account == Wallet.from_hex(key_hex).account
    agent = AgentWallet.from_file(path, "0x" + "11" * 20)
    assert agent.address == MASTER.address and agent.account == b"\x11" * 20 and agent.is_agent
    assert not MASTER.is_agent
    assert key_hex not in repr(MASTER) + repr(agent) + str(MASTER)
    for bad in ("0x1234", "zz" * 32, "00" * 32, "ff" * 32):
        with pytest.raises(InvalidKey):
            Wallet.from_hex(bad)
    with pytest.raises(InvalidKey, match="cannot read"):
        Wallet.from_file(tmp_path / "missing")
    with pytest.raises(ValueError, match="differ"):
        AgentWallet(AGENT_KEY, AGENT.address)
    assert Wallet.generate().account != Wallet.generate().account


def test_wallet_refuses_to_sign_for_another_account() -> None:
    other = Wallet.generate()
    intent = make_client(other).build.cancel_all()
    with pytest.raises(ValueError, match="acts for"):
        MASTER.sign(DOMAIN, intent)


def test_markets_from_venue_file(tmp_path: Path) -> None:
    path = tmp_path / "venue.toml"
    path.write_text(
        "[venue]\nchain_id = 31337\n"
        f'settlement_contract = "{CONTRACT}"\n\n'
        '[[markets]]\nsymbol = "BTC"\nsz_decimals = 5\ntick = 10\nlot = 10\n'
    )
    markets = Markets.from_config_file(path)
    assert dict(markets) == {"BTC": MarketInfo(0, "BTC", 5)}
    client = Client.from_venue_file("http://127.0.0.1:9", MASTER, path)
    try:
        assert client.domain == DOMAIN
        assert client.build.place_order("BTC", "buy", "0.1", "1").price == 10
    finally:
        client.close()
