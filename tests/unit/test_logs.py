"""Structured logging: one JSON object per line on stderr, or text; bad settings refused."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from asyncdex.logs import configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_json_lines_carry_the_fields_extras_and_the_exception(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")
    log = logging.getLogger("asyncdex.test")
    log.debug("below the level")
    log.info("recovered %d records", 42, extra={"last_seq": 42, "root": b"\x01", "level": "x"})
    try:
        raise RuntimeError("disk\nfull")
    except RuntimeError:
        log.exception("journal failed")
    captured = capsys.readouterr()
    assert captured.out == ""
    first, second = json_lines(captured.err)
    assert set(first) == {"ts", "level", "logger", "msg", "last_seq", "root", "extra_level"}
    assert (first["level"], first["logger"], first["msg"]) == ("INFO", "asyncdex.test",
                                                               "recovered 42 records")  # fmt: skip
    assert first["last_seq"] == 42
    assert first["root"] == str(b"\x01")  # JSON cannot hold bytes: their str()
    assert first["extra_level"] == "x"  # an extra never hides a field of the line
    assert isinstance(first["ts"], str) and first["ts"].endswith("Z")
    stamp = datetime.strptime(first["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 3600
    assert second["level"] == "ERROR" and second["msg"] == "journal failed"
    assert isinstance(second["exc"], str)
    assert "RuntimeError: disk\nfull" in second["exc"] and "Traceback" in second["exc"]


def test_configuring_again_replaces_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    configure_logging("text", logging.WARNING)
    log = logging.getLogger("asyncdex.test")
    log.info("not shown")
    log.warning("shown once")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(" WARNING asyncdex.test shown once")


@pytest.mark.parametrize(
    ("fmt", "level", "message"),
    [
        ("xml", "INFO", "log format must be one of text, json"),
        ("json", "LOUD", "log level must be one of DEBUG, INFO"),
        ("json", -1, "must not be negative"),
        ("json", True, "log level must be one of"),
    ],
)
def test_invalid_settings_are_refused_and_change_nothing(
    fmt: str, level: int | str, message: str
) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    with pytest.raises(ValueError, match=message):
        configure_logging(fmt, level)
    assert root.handlers == before
