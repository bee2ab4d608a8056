"""asyncdex.signing: signatures and their recovery, below every package that checks one.

Invariants:

- Pure signing: EIP-712 typed data, secp256k1 signing and low-s recovery, the signed-intent
  wire format, Hyperliquid action signing, and the stateless intake that turns a request body
  into verified submissions (with its worker pool). No clock, no account state, no sockets.
- Imports only ``asyncdex.types``, ``asyncdex.messages`` and ``asyncdex.sequencer`` (the
  record encoding and the ``Submission`` a verified intent becomes); never the gateway, the
  CLI or the web page, so the oracle, the consensus core and the gateway all build on it
  (see ``tests/unit/test_layering.py``).
"""
