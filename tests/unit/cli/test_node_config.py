"""The node's config file: one TOML file describes the venue; a flag given wins over the file;
a wrong key or value is refused with a message naming it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from asyncdex.cli import node_cmd
from asyncdex.cli.node_cmd import ConfigError, load_node_file, settings_from_args
from asyncdex.gateway.fanout import ConnectionCaps
from asyncdex.gateway.node import NodeSettings
from asyncdex.gateway.ratelimit import RateLimits
from asyncdex.web import WebPage

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "node.toml"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    node_cmd.add_parser(parser.add_subparsers())
    return parser.parse_args(["node", *argv])


def settings(tmp_path: Path, config: Path, *flags: str) -> NodeSettings:
    return settings_from_args(
        parse("--data", str(tmp_path / "data"), "--config", str(config), *flags)
    )


def test_the_example_describes_a_whole_venue() -> None:
    engine_config, _venue, settlement, node = load_node_file(EXAMPLE)
    assert [m.symbol for m in engine_config.markets] == ["BTC", "ETH"]
    assert len(engine_config.oracle_publishers) == 3
    assert settlement["deploy"] is True and settlement["batch_interval_ms"] == 1_000
    assert node == {
        "port": 8080,
        "snapshot_every": 10_000,
        "verify_workers": None,
        "log_format": "text",
        "hyperliquid_network": "testnet",
        "hyperliquid_api": True,
        "rate_limits": True,
        "ip_weight_per_minute": 1_200,
        "address_initial_requests": 10_000,
        "address_requests_per_usdc": 1,
        "max_sockets": 1_000,
        "max_sockets_per_address": 100,
    }


def test_file_values_apply_and_flags_win(tmp_path: Path) -> None:
    from_file = settings(tmp_path, EXAMPLE)
    assert from_file.port == 8080 and from_file.snapshot_every == 10_000
    assert from_file.settlement is not None and from_file.settlement.embedded is not None
    assert from_file.settlement.batch_interval_ms == 1_000
    assert from_file.settlement.max_lag_ms == 30_000
    assert from_file.verify_workers >= 1  # one per core by default
    # the embedded deployment is the signing domain
    deployed = from_file.settlement.embedded.client.address.lower()
    assert "0x" + from_file.domain.verifying_contract.hex() == deployed
    # the embedded chain is a process kept in the data directory: one at a time
    from_file.settlement.embedded.close()

    flagged = settings(
        tmp_path, EXAMPLE, "--port", "0", "--verify-workers", "0", "--batch-interval-ms", "250",
        "--snapshot-every", "7",
    )  # fmt: skip
    assert flagged.port == 0 and flagged.verify_workers == 0 and flagged.snapshot_every == 7
    assert flagged.settlement is not None and flagged.settlement.batch_interval_ms == 250
    assert len(from_file.extensions) == len(flagged.extensions) == 5
    assert WebPage in flagged.extensions  # the trading page at /
    assert flagged.domain == from_file.domain  # the same chain and contract, found again
    assert flagged.settlement.embedded is not None
    flagged.settlement.embedded.close()

    without = settings(tmp_path, EXAMPLE, "--no-hyperliquid-api")
    assert len(without.extensions) == 4
    assert without.settlement is not None and without.settlement.embedded is not None
    without.settlement.embedded.close()


def test_rate_limits_and_socket_caps_come_from_the_file_and_flags(tmp_path: Path) -> None:
    def venue(node_lines: str) -> Path:
        path = tmp_path / "limits.toml"
        path.write_text(
            "[venue]\nchain_id = 31337\n"
            'settlement_contract = "0x5fbdb2315678afecb367f032d93f642f64180aa3"\n'
            f"[node]\n{node_lines}\n"
            '[[markets]]\nsymbol = "BTC"\nsz_decimals = 5\ntick = 10\nlot = 10\n'
        )
        return path

    defaults = settings(tmp_path, venue(""))
    assert defaults.rate_limits == RateLimits(1_200, 10_000, 1)
    assert defaults.connection_caps == ConnectionCaps(1_000, 100)
    edited = venue("ip_weight_per_minute = 50\nmax_sockets_per_address = 5")
    from_file = settings(tmp_path, edited)
    assert from_file.rate_limits == RateLimits(50, 10_000, 1)
    assert from_file.connection_caps == ConnectionCaps(1_000, 5)
    flagged = settings(
        tmp_path, edited, "--ip-weight-per-minute", "7", "--address-initial-requests", "3",
        "--max-sockets", "9", "--max-sockets-per-address", "2",
    )  # fmt: skip
    assert flagged.rate_limits == RateLimits(7, 3, 1)
    assert flagged.connection_caps == ConnectionCaps(9, 2)
    assert settings(tmp_path, edited, "--no-rate-limits").rate_limits is None
    with pytest.raises(ConfigError, match="--ip-weight-per-minute must be positive"):
        settings(tmp_path, edited, "--ip-weight-per-minute", "0")


def with_line(tmp_path: Path, table: str, line: str) -> Path:
    """The example with ``line`` added at the top of ``[table]``."""
    text = EXAMPLE.read_text().replace(f"[{table}]\n", f"[{table}]\n{line}\n", 1)
    path = tmp_path / "venue.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("table", "line", "message"),
    [
        ("node", "colour = 1", r"\[node\]: unknown key\(s\) colour"),
        ("node", 'log_format = "xml"', "log_format must be one of text, json"),
        ("node", 'hyperliquid_network = "devnet"', "hyperliquid_network must be one of"),
        ("node", "verify_workers = true", "verify_workers must be a non-negative integer"),
        ("node", 'snapshot_every = "often"', "snapshot_every must be a non-negative integer"),
        ("settlement", "batch_interval_ms = -5", "batch_interval_ms must be a non-negative"),
        ("settlement", "tick_ms = 1.5", "tick_ms must be a non-negative integer"),
    ],
)
def test_a_wrong_key_or_value_is_refused(
    tmp_path: Path, table: str, line: str, message: str
) -> None:
    # the line comes first in the table, so the file's own value of the key follows it:
    # TOML refuses a key defined twice, which is a refusal too, but not the one under test
    path = with_line(tmp_path, table, line)
    key = line.split(" = ")[0]
    text = path.read_text()
    first = text.index(line) + len(line)
    rest = "\n".join(
        entry for entry in text[first:].split("\n") if not entry.startswith(f"{key} =")
    )
    path.write_text(text[:first] + rest)
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, path)


def test_zero_batch_interval_from_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "venue.toml"
    path.write_text(
        EXAMPLE.read_text().replace("batch_interval_ms = 1_000", "batch_interval_ms = 0")
    )
    with pytest.raises(ConfigError, match="--batch-interval-ms must be positive"):
        settings(tmp_path, path)


def test_the_engine_is_native_by_default_and_chosen_by_flag() -> None:
    base = ("--data", "data", "--config", str(EXAMPLE))
    assert node_cmd.engine_choice(parse(*base)) is None  # the node runs native if built
    assert node_cmd.engine_choice(parse(*base, "--engine", "reference")) == "reference"
    # the retired mypyc build's flag is refused, naming what replaced it, with or without
    # an engine chosen beside it
    for extra in ((), ("--engine", "reference"), ("--engine", "native")):
        with pytest.raises(ConfigError, match=r"--compiled is retired.*--engine native"):
            node_cmd.engine_choice(parse(*base, "--compiled", *extra))
    with pytest.raises(SystemExit):
        parse(*base, "--engine", "fast")


def test_the_retired_compiled_flag_stops_the_node_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert node_cmd.main(["--data", str(data), "--config", str(EXAMPLE), "--compiled"]) == 2
    assert "--compiled is retired" in capsys.readouterr().err
    assert not data.exists()  # nothing was created
