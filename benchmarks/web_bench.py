"""Trading page benchmark: first paint and book rendering under load, in a real browser.

What runs: ``asyncdex node`` as its own process (no settlement: the page's market view
needs none), one BTC market with 20 levels of depth a side; Debian's chromium
(``/usr/bin/chromium``) driven by Playwright opens the page the node serves, on loopback.

Figures:
- first paint: the browser's first-contentful-paint, and when the book was first shown
  (its first render from a synced snapshot), both in ms from navigation start;
- under load: a maker changes the book ``--rate`` times a second (default 20: alternately
  placing an order near the mid and cancelling its oldest one, each a book delta) for
  ``--seconds``; the page counts book messages received and book renders (at most one per
  animation frame, whatever the message rate), the time each render takes, and a
  ``requestAnimationFrame`` loop counts frames and frames later than 1.5 frame periods
  (dropped frames).

Prints a table and returns the figures; never asserts a time. Run:
``asyncdex bench web [--quick]`` or ``python -m benchmarks.web_bench [--rate N] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from asyncdex.client import Client, Wallet
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.types.hashing import keccak256

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "web-bench operator"
PUBLISHER = LocalSigner(keccak256(b"web-bench publisher")).address
MAKER = Wallet.from_hex(keccak256(b"web-bench maker").hex())

FRAME_PROBE = """() => {
    const probe = {frames: 0, late: 0, longest: 0, last: null, running: true};
    window.__frameProbe = probe;
    const tick = (now) => {
        if (probe.last !== null) {
            const gap = now - probe.last;
            probe.frames += 1;
            probe.longest = Math.max(probe.longest, gap);
            if (gap > 25) probe.late += 1;  // 1.5 periods of a 60 Hz display
        }
        probe.last = now;
        if (probe.running) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
}"""


def start_node(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = workdir / "venue.toml"
    config.write_text(
        f'oracle_publishers = ["0x{PUBLISHER.hex()}"]\n\n[venue]\nchain_id = 31337\n'
        'settlement_contract = "0x5fbdb2315678afecb367f032d93f642f64180aa3"\n\n'
        '[[markets]]\nsymbol = "BTC"\nsz_decimals = 5\ntick = 10\nlot = 10\n'
        "oracle_staleness_ms = 3600000\n"
    )
    env = dict(os.environ, ASYNCDEX_OPERATOR_TOKEN=TOKEN)
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncdex.cli.node_cmd", "--data", str(workdir / "data"),
         "--config", str(config), "--port", "0", "--ip-weight-per-minute", "100000000",
         "--address-initial-requests", "100000000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    return process, ready["url"]


def operator(url: str, commands: list[dict[str, Any]]) -> None:
    import urllib.request

    request = urllib.request.Request(
        url + "/v1/system",
        json.dumps({"commands": commands}).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    urllib.request.urlopen(request).read()


def churn(url: str, rate: float, stop: threading.Event, sent: list[int]) -> None:
    """Change the book ``rate`` times a second: place near the mid, cancel the oldest."""
    with Client.connect(url, MAKER) as maker:
        resting: list[int] = []
        step = 0
        started = time.monotonic()
        while not stop.is_set():
            if step % 2 == 0 or not resting:
                offset = 1 + (step // 2) % 15
                side = "buy" if step % 4 == 0 else "sell"
                price = 60_000 - offset if side == "buy" else 60_000 + offset
                outcome = maker.wait_for(maker.place_order("BTC", side, "0.001", str(price)))
                if outcome.order_id is not None:
                    resting.append(outcome.order_id)
            else:
                maker.cancel("BTC", resting.pop(0))
            step += 1
            sent[0] = step
            delay = started + step / rate - time.monotonic()
            if delay > 0:
                stop.wait(delay)


def run(quick: bool = False, rate: float = 20.0, seconds: float | None = None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    if seconds is None:
        seconds = 3.0 if quick else 10.0

    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_node(Path(tmp))
        try:
            operator(url, [
                {"type": "deposit", "account": "0x" + MAKER.address.hex(),
                 "amount": 10_000_000 * 10**6, "l1Index": 0},
                {"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(), "market": 0,
                 "price": 600_000},
            ])  # fmt: skip
            with Client.connect(url, MAKER) as maker:
                for level in range(20):
                    maker.place_order("BTC", "sell", "0.5", str(60_020 + 10 * level))
                    maker.place_order("BTC", "buy", "0.5", str(59_980 - 10 * level))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(url + "/")
                page.wait_for_function("() => window.asyncdex && window.asyncdex.perf.bookShownAt")
                paint = page.evaluate(
                    "() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime"
                )
                book_shown = page.evaluate("() => window.asyncdex.perf.bookShownAt")
                before = page.evaluate("() => ({...window.asyncdex.perf})")
                page.evaluate(FRAME_PROBE)
                stop = threading.Event()
                sent = [0]
                worker = threading.Thread(target=churn, args=(url, rate, stop, sent))
                started = time.monotonic()
                worker.start()
                stop.wait(seconds)
                stop.set()
                worker.join()
                elapsed = time.monotonic() - started
                page.evaluate("() => { window.__frameProbe.running = false; }")
                after = page.evaluate("() => ({...window.asyncdex.perf})")
                frames = page.evaluate("() => ({...window.__frameProbe})")
                synced = page.evaluate("() => window.asyncdex.S.book.synced")
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    renders = after["bookRenders"] - before["bookRenders"]
    figures = {
        "first_contentful_paint_ms": paint,
        "book_shown_ms": book_shown,
        "book_changes_per_s": sent[0] / elapsed,
        "book_messages_per_s": (after["bookMessages"] - before["bookMessages"]) / elapsed,
        "book_renders_per_s": renders / elapsed,
        "mean_render_ms": (after["bookRenderMs"] - before["bookRenderMs"]) / max(renders, 1),
        "max_render_ms": after["maxBookRenderMs"],
        "frames_per_s": frames["frames"] / elapsed,
        "late_frames": frames["late"],
        "longest_frame_ms": frames["longest"],
        "book_synced_at_end": synced,
    }
    print(f"{'trading page (chromium, loopback)':44} {'':>12}")
    for name, value in figures.items():
        shown = f"{value:12.1f}" if isinstance(value, float) else f"{value!s:>12}"
        print(f"  {name:42} {shown}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="book changes per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="3 seconds of load")
    args = parser.parse_args(argv)
    run(args.quick, args.rate, None if args.quick else args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
