"""asyncdex.fairness: sealed intents — threshold keys, DKG, decryption shares, envelopes.

Invariants:

- Pure: no clock, no I/O, no float. Randomness only in the functions that must draw it — a
  client sealing an intent (:func:`~asyncdex.fairness.sealing.seal_intent`), a member making
  its DKG key or dealing (:func:`~asyncdex.fairness.dkg.dkg_keypair`,
  :func:`~asyncdex.fairness.dkg.deal`) — each taking an RNG or using ``secrets``. Everything
  a member computes from public messages (share checks, key combination, opening an
  envelope, the DKG's verdicts) is deterministic, so every honest member reaches the same
  result.
- Imports only ``asyncdex.types`` and ``asyncdex.signing`` from the project (it sits right
  above the oracle and below the consensus core: see ``tests/unit/test_layering.py``).

See ``docs/fairness.md`` for the scheme, its security argument and the wire formats.
"""

from asyncdex.fairness.dkg import (
    Complaint,
    Deal,
    DkgFailed,
    DkgOutcome,
    DkgSetup,
    MalformedDeal,
    committee_key,
    deal,
    decide_qualified,
    dkg_keypair,
    judge_complaint,
    key_share,
    receive_deal,
    validate_deal,
)
from asyncdex.fairness.reveal import (
    BlockEffects,
    KeyAssembler,
    MissingEpochKey,
    SealedLog,
    SealedOutcome,
    SealedPlace,
    SealedRejection,
)
from asyncdex.fairness.sealing import (
    MalformedSealedIntent,
    Opened,
    Rejected,
    Rejection,
    SealedHeader,
    SealedIntent,
    SealingKey,
    decode_sealed_intent,
    envelope_signer,
    open_sealed_intent,
    seal_intent,
    sealed_intent_id,
    venue_id,
)
from asyncdex.fairness.threshold import (
    Combination,
    CommitteeKey,
    DecryptionShare,
    EpochKey,
    KeyShare,
    ShareFault,
    ShareRefused,
    combine_decryption_shares,
    create_decryption_share,
    epoch_of,
    verify_decryption_share,
    verify_epoch_key,
)

__all__ = [
    "BlockEffects",
    "Combination",
    "CommitteeKey",
    "Complaint",
    "Deal",
    "DecryptionShare",
    "DkgFailed",
    "DkgOutcome",
    "DkgSetup",
    "EpochKey",
    "KeyAssembler",
    "KeyShare",
    "MalformedDeal",
    "MalformedSealedIntent",
    "MissingEpochKey",
    "Opened",
    "Rejected",
    "Rejection",
    "SealedHeader",
    "SealedIntent",
    "SealedLog",
    "SealedOutcome",
    "SealedPlace",
    "SealedRejection",
    "SealingKey",
    "ShareFault",
    "ShareRefused",
    "combine_decryption_shares",
    "committee_key",
    "create_decryption_share",
    "deal",
    "decide_qualified",
    "decode_sealed_intent",
    "dkg_keypair",
    "envelope_signer",
    "epoch_of",
    "judge_complaint",
    "key_share",
    "open_sealed_intent",
    "receive_deal",
    "seal_intent",
    "sealed_intent_id",
    "validate_deal",
    "venue_id",
    "verify_decryption_share",
    "verify_epoch_key",
]
