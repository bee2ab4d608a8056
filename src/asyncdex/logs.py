"""Process-wide logging setup: human-readable text or JSON lines, on stderr.

Invariants:

- One handler on the root logger, writing to stderr; calling :func:`configure_logging`
  again replaces it (never a second copy of each line). Stdout stays free for the node's
  one ``listening`` line.
- ``json``: exactly one JSON object per line per record, with ``ts`` (UTC, ISO 8601 with
  milliseconds), ``level``, ``logger`` and ``msg`` (the message with its arguments), every
  field passed in ``extra={...}`` under its own name, and ``exc`` (the formatted traceback)
  when the record carries an exception. A value JSON cannot hold is written as its
  ``str()``; an ``extra`` field named like one of the four is kept under ``extra_<name>``,
  so it never hides them.
- A format or level this module does not know is refused with a ValueError naming the
  choices; nothing is changed then.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

LogFormat = Literal["text", "json"]
FORMATS: tuple[str, ...] = ("text", "json")
LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}
_RESERVED = frozenset({"ts", "level", "logger", "msg", "exc"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        millis = int((record.created - seconds) * 1000)
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES:
                line[f"extra_{key}" if key in _RESERVED else key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _level(level: int | str) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        if level < 0:
            raise ValueError(f"log level must not be negative, got {level}")
        return level
    if isinstance(level, str) and level.upper() in LEVELS:
        return logging.getLevelNamesMapping()[level.upper()]
    raise ValueError(f"log level must be one of {', '.join(LEVELS)} or a number, got {level!r}")


def configure_logging(fmt: str = "text", level: int | str = logging.INFO) -> logging.Handler:
    """Send every log record at ``level`` or above to stderr as ``fmt`` (``text`` or
    ``json``); returns the handler installed on the root logger."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    numeric = _level(level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    # force: drop whatever handler an earlier call (or a library) put on the root logger
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    return handler
