"""The venue TOML loader: valid files load exactly; anything unknown or ill-typed is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from asyncdex.cli.demo import demo_config
from asyncdex.engine.snapshot import config_hash
from asyncdex.types.config_file import ConfigFileError, load_engine_config
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.packing import pack

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "venue.toml"
PUBLISHER = "0x" + "ab" * 20

MINIMAL = f"""
oracle_publishers = ["{PUBLISHER}"]

[[markets]]
symbol = "BTC"
sz_decimals = 5
tick = 10
lot = 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "venue.toml"
    path.write_text(text)
    return path


def test_the_shipped_example_is_the_demo_venue() -> None:
    config = load_engine_config(EXAMPLE)
    assert config == demo_config()
    assert config_hash(config) == config_hash(demo_config())  # its snapshots restore here


def test_minimal_file_takes_market_defaults(tmp_path: Path) -> None:
    config = load_engine_config(write(tmp_path, MINIMAL))
    assert config == EngineConfig(
        (MarketSpec(0, "BTC", sz_decimals=5, tick=10, lot=10),),
        oracle_publishers=(bytes.fromhex("ab" * 20),),
    )


def test_every_market_field_and_the_order_limit(tmp_path: Path) -> None:
    text = MINIMAL.replace("[[markets]]", "max_open_orders_per_account = 50\n\n[[markets]]")
    text += "market_id = 0\ntaker_fee_ppm = 500\nfunding_interval_ms = 28_800_000\n"
    text += '\n[[markets]]\nsymbol = "ETH"\nsz_decimals = 4\ntick = 1\nlot = 10\n'
    config = load_engine_config(write(tmp_path, text))
    assert config.max_open_orders_per_account == 50
    assert [m.symbol for m in config.markets] == ["BTC", "ETH"]
    assert [m.market_id for m in config.markets] == [0, 1]
    assert config.markets[0].taker_fee_ppm == 500
    assert config.markets[0].funding_interval_ms == 28_800_000


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("tick = 10", "tick_size = 10"), "markets[0]: unknown key tick_size"),
        (("[[markets]]", 'venue = "x"\n[[markets]]'), "unknown key venue"),
        (("lot = 10", "lot = 10\n[markets.limits]\nx = 1"), "markets[0]: unknown key limits"),
    ],
)
def test_unknown_keys_are_refused(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = write(tmp_path, MINIMAL.replace(*edit, 1))
    with pytest.raises(ConfigFileError) as caught:
        load_engine_config(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_unknown_key_error_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"known: .*lot.*tick"):
        load_engine_config(write(tmp_path, MINIMAL.replace("lot = 10", "lot = 10\nlots = 1")))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("tick = 10", "tick = 1.5"), "tick must be an integer"),
        (("tick = 10", "tick = true"), "tick must be an integer"),
        (("tick = 10", 'tick = "10"'), "tick must be an integer"),
        (('symbol = "BTC"', "symbol = 7"), "symbol must be a string"),
        (("tick = 10", "tick = 0"), "tick and lot must be positive"),
        (("lot = 10\n", ""), "markets[0]: missing lot"),
        (("lot = 10", "lot = 10\nmarket_id = 3"), "market_id 3 must equal its position 0"),
        ((f'"{PUBLISHER}"', '"0x1234"'), "oracle_publishers[0]: must be a 0x-prefixed"),
        ((f'"{PUBLISHER}"', '"0x' + "zz" * 20 + '"'), "is not hex"),
        ((f'"{PUBLISHER}"', f'"{PUBLISHER}", "{PUBLISHER}"'), "lists an address twice"),
        ((f'["{PUBLISHER}"]', f'"{PUBLISHER}"'), "must be a list of addresses"),
        (("sz_decimals = 5", "sz_decimals = 9"), "sz_decimals must be in 0..6"),
        (("[[markets]]", "max_open_orders_per_account = 0\n[[markets]]"), "positive integer"),
        (("tick = 10", "tick = = 10"), "not valid TOML"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    text = MINIMAL.replace(*edit, 1)
    assert text != MINIMAL
    with pytest.raises(ConfigFileError) as caught:
        load_engine_config(write(tmp_path, text))
    assert message in str(caught.value)


def test_no_markets_or_duplicate_symbols(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="at least one"):
        load_engine_config(write(tmp_path, f'oracle_publishers = ["{PUBLISHER}"]\n'))
    doubled = MINIMAL + MINIMAL.split("\n", 2)[2]
    with pytest.raises(ConfigFileError, match="symbols must be unique"):
        load_engine_config(write(tmp_path, doubled))


def test_a_market_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"markets\[0\]: must be a table"):
        load_engine_config(write(tmp_path, 'markets = ["BTC"]\n'))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_engine_config(tmp_path / "absent.toml")


def test_a_batch_auction_market_loads_and_its_settings_are_checked(tmp_path: Path) -> None:
    text = MINIMAL + 'ordering = "batch_auction"\nauction_interval_ms = 200\n'
    (market,) = load_engine_config(write(tmp_path, text)).markets
    assert (market.ordering, market.auction_interval_ms) == ("batch_auction", 200)
    for bad, message in (
        ('ordering = "batch_auction"\n', "needs auction_interval_ms > 0"),
        ("auction_interval_ms = 200\n", "for batch_auction markets only"),
        ('ordering = "fcfs"\n', "ordering must be 'continuous' or 'batch_auction'"),
        ("ordering = 1\n", "ordering must be a string"),
    ):
        with pytest.raises(ConfigFileError, match=message):
            load_engine_config(write(tmp_path, MINIMAL + bad))


def test_a_continuous_market_fingerprints_as_before_batch_auctions() -> None:
    """Snapshots of continuous venues keep restoring: the two ordering fields are not in
    their config fingerprint (the packed spec fields as they were before)."""
    spec = MarketSpec(0, "BTC", sz_decimals=5, tick=10, lot=10)
    config = EngineConfig((spec,), oracle_publishers=(bytes.fromhex("ab" * 20),))
    old_fields = [
        getattr(spec, name)
        for name in MarketSpec.__dataclass_fields__
        if name not in ("ordering", "auction_interval_ms")
    ]
    assert config_hash(config) == keccak256(
        pack([[old_fields], list(config.oracle_publishers), config.max_open_orders_per_account])
    )
    batch = dataclasses.replace(spec, ordering="batch_auction", auction_interval_ms=200)
    assert config_hash(EngineConfig((batch,), config.oracle_publishers)) != config_hash(config)
