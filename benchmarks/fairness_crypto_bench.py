"""Sealed-intent cryptography benchmark: what sealing costs a client, a member and a block.

Measures, on one core unless ``--threads`` says otherwise:
- client: sealing one signed PlaceOrder for an epoch (µs) within the client's session for
  that epoch (the SDK keeps one: AEAD + envelope signature), and opening a session (hash to
  G2 + pairing, once per client per epoch);
- member: making its decryption share for an epoch, and checking one share from another
  member (the pairing equation);
- block of ``--intents`` sealed intents: combining t shares into the epoch key (checking each
  share first), checking a received key, and opening every envelope (envelope signature,
  AEAD, intent decoding and signature, plus one pairing per client session) in two shapes:
  from ``--traders`` clients with one session each, and every intent in its own session (the
  worst case: a pairing per intent) — against the baseline a plaintext intent pays anyway
  (binary decode + signature recovery), measured in the same run;
- the DKG among ``--members`` members: one deal, one member checking one deal, the whole run.

Per-operation figures are the best of several timed rounds (the least disturbed by other
processes); block figures are one pass each. Prints figures and a JSON line; never asserts a
duration.

    python -m benchmarks.fairness_crypto_bench [--members 4] [--intents 1000] [--traders 16]
        [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import time
import timeit
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asyncdex.fairness.dkg import (
    DkgSetup,
    deal,
    dkg_keypair,
    receive_deal,
    run_local_dkg,
    validate_deal,
)
from asyncdex.fairness.sealing import (
    SealingKey,
    Sessions,
    open_sealed_intent,
    seal_intent,
    venue_id,
)
from asyncdex.fairness.threshold import (
    combine_decryption_shares,
    create_decryption_share,
    verify_decryption_share,
    verify_epoch_key,
)
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
    PlaceOrder,
    asyncdex_domain,
    decode_signed_intent,
    encode_signed_intent,
    sign_intent,
)

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
EPOCH = 1_765_000_000


def _best_us(run: Callable[[], Any], number: int, repeat: int = 5) -> float:
    return min(timeit.repeat(run, number=number, repeat=repeat)) / number * 1e6


def _order(signer: LocalSigner, nonce: int) -> PlaceOrder:
    return PlaceOrder(
        signer.address, nonce, 0, 1, nonce % 2 == 0, 2_000_00 + nonce % 100, 1 + nonce % 7,
        0, 0, False, NO_CLIENT_ID, 0, 0, 0,
    )  # fmt: skip


def measure(members: int, intents: int, traders_n: int, threads: int) -> dict[str, Any]:
    rng = random.Random(2026)
    threshold = (members - 1) // 3 + 1
    key, shares = run_local_dkg(members, threshold, rng.randbytes(32), rng.getrandbits)
    venue = venue_id(DOMAIN)
    traders = [LocalSigner(rng.randbytes(32)) for _ in range(traders_n)]
    figures: dict[str, Any] = {
        "members": members,
        "threshold": threshold,
        "intents": intents,
        "traders": traders_n,
    }

    # client
    trader = traders[0]
    one = sign_intent(trader, DOMAIN, _order(trader, 1))
    sealing = SealingKey(DOMAIN, key.public_key)
    sealing.session(EPOCH)
    fresh = SealingKey(DOMAIN, key.public_key, reuse_sessions=False)
    figures["client_seal_us"] = _best_us(lambda: seal_intent(sealing, trader, one, EPOCH), 50)
    figures["client_sign_intent_us"] = _best_us(
        lambda: sign_intent(trader, DOMAIN, one.intent), 200
    )
    figures["client_open_session_us"] = _best_us(lambda: fresh.session(EPOCH), 20)

    # member
    share = create_decryption_share(shares[0], venue, EPOCH)
    figures["member_share_create_us"] = _best_us(
        lambda: create_decryption_share(shares[0], venue, EPOCH), 20
    )
    figures["member_share_verify_us"] = _best_us(
        lambda: verify_decryption_share(key, venue, EPOCH, share), 20
    )

    # block
    signed = [
        sign_intent(traders[k % traders_n], DOMAIN, _order(traders[k % traders_n], k + 2))
        for k in range(intents)
    ]
    expected = [encode_signed_intent(s) for s in signed]
    per_trader = [SealingKey(DOMAIN, key.public_key) for _ in traders]
    sealed = [
        seal_intent(per_trader[k % traders_n], traders[k % traders_n], s, EPOCH)
        for k, s in enumerate(signed)
    ]
    sealed_worst = [
        seal_intent(fresh, traders[k % traders_n], s, EPOCH) for k, s in enumerate(signed)
    ]
    all_shares = [create_decryption_share(s, venue, EPOCH) for s in shares]
    started = time.perf_counter()
    epoch_key = combine_decryption_shares(key, venue, EPOCH, all_shares[:threshold]).key
    figures["block_combine_ms"] = (time.perf_counter() - started) * 1e3
    assert epoch_key is not None
    figures["block_key_verify_ms"] = (
        _best_us(lambda: verify_epoch_key(key, venue, epoch_key), 10) / 1e3
    )

    started = time.perf_counter()
    cache: Sessions = {}
    opened = [open_sealed_intent(DOMAIN, epoch_key, envelope, cache) for envelope in sealed]
    open_s = time.perf_counter() - started
    assert [getattr(o, "body", None) for o in opened] == expected
    figures["block_open_ms"] = open_s * 1e3
    figures["open_per_intent_us"] = open_s / intents * 1e6

    started = time.perf_counter()
    opened = [open_sealed_intent(DOMAIN, epoch_key, envelope) for envelope in sealed_worst]
    worst_s = time.perf_counter() - started
    assert [getattr(o, "body", None) for o in opened] == expected
    figures["block_open_session_per_intent_ms"] = worst_s * 1e3

    started = time.perf_counter()
    for body in expected:
        decode_signed_intent(DOMAIN, body)
    plain_s = time.perf_counter() - started
    figures["plaintext_decode_verify_ms"] = plain_s * 1e3
    figures["open_vs_plaintext_ratio"] = open_s / plain_s
    figures["worst_open_vs_plaintext_ratio"] = worst_s / plain_s

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            started = time.perf_counter()
            list(pool.map(lambda e: open_sealed_intent(DOMAIN, epoch_key, e), sealed_worst))
            figures[f"block_open_{threads}_threads_ms"] = (time.perf_counter() - started) * 1e3

    # DKG
    pairs = [dkg_keypair(rng.getrandbits) for _ in range(members)]
    setup = DkgSetup(rng.randbytes(32), threshold, tuple(p for _, p in pairs))
    one_deal = deal(setup, 1, rng.getrandbits)
    figures["dkg_deal_ms"] = _best_us(lambda: deal(setup, 1), 3, repeat=3) / 1e3
    figures["dkg_check_deal_ms"] = (
        _best_us(lambda: receive_deal(setup, 2, pairs[1][0], validate_deal(setup, one_deal)), 3, 3)
        / 1e3
    )
    started = time.perf_counter()
    run_local_dkg(members, threshold, rng.randbytes(32))
    figures["dkg_whole_run_one_process_ms"] = (time.perf_counter() - started) * 1e3
    return figures


def report(f: dict[str, Any]) -> None:
    n, t, b, c = f["members"], f["threshold"], f["intents"], f["traders"]
    print(f"sealed intents: {n} members, threshold {t}, block of {b} from {c} clients")
    rows = [
        ("client  seal one signed intent (in a session)", f["client_seal_us"], "µs"),
        ("        (signing the intent itself)", f["client_sign_intent_us"], "µs"),
        ("        open a session (once per epoch)", f["client_open_session_us"], "µs"),
        ("member  make its decryption share", f["member_share_create_us"], "µs"),
        ("        check one member's share", f["member_share_verify_us"], "µs"),
        (f"block   combine {t} shares (each checked)", f["block_combine_ms"], "ms"),
        ("        check a received epoch key", f["block_key_verify_ms"], "ms"),
        (f"        open {b}, {c} client sessions", f["block_open_ms"], "ms"),
        (f"        open {b}, a session per intent", f["block_open_session_per_intent_ms"], "ms"),
        (f"        plaintext decode + verify of {b}", f["plaintext_decode_verify_ms"], "ms"),
        ("        ratio, sessions / plaintext", f["open_vs_plaintext_ratio"], "x"),
        (
            "        ratio, a session per intent / plaintext",
            f["worst_open_vs_plaintext_ratio"],
            "x",
        ),
    ]
    rows += [
        (f"        open {b} on {k.split('_')[2]} threads (session per intent)", v, "ms")
        for k, v in f.items()
        if k.startswith("block_open_") and k.endswith("_threads_ms")
    ]
    rows += [
        ("DKG     one deal", f["dkg_deal_ms"], "ms"),
        ("        one member checks one deal", f["dkg_check_deal_ms"], "ms"),
        ("        whole run in one process", f["dkg_whole_run_one_process_ms"], "ms"),
    ]
    for label, value, unit in rows:
        print(f"  {label:<52} {value:>10.1f} {unit}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--intents", type=int, default=1000)
    parser.add_argument("--traders", type=int, default=16, help="clients, one session each")
    parser.add_argument("--threads", type=int, default=1, help="also open the block on N threads")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    if min(args.members, args.intents, args.traders) < 1:
        parser.error("--members, --intents and --traders must be positive")
    figures = measure(args.members, args.intents, args.traders, args.threads)
    figures = {k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}
    if not args.json:
        report(figures)
    print(json.dumps({"bench": "fairness_crypto", **figures}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
