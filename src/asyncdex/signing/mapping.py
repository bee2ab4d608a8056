"""From a verified signed intent to the engine command the sequencer journals.

Invariants:
- One intent maps to exactly one ``Signed`` envelope: the recovered signer, the intent's
  nonce and deadline, and the engine command. No field is dropped silently: a field the
  engine cannot honour is refused here (a withdrawal to another address than the account).
- Client ids travel as 16 bytes on the wire and as the same 128-bit integer in the engine
  (0 = none in both).
"""

from __future__ import annotations

from asyncdex.messages import commands as engine
from asyncdex.messages.commands import Command, Signed
from asyncdex.signing import intents as wire


class UnsupportedIntent(ValueError):
    """A well-formed intent the venue cannot carry out as asked."""


def client_id_int(client_id: bytes) -> int:
    return int.from_bytes(client_id, "big")


def command_from_intent(intent: wire.Intent) -> Command:
    """The engine command an intent asks for (without the envelope)."""
    match intent:
        case wire.PlaceOrder():
            return engine.PlaceOrder(
                intent.account, intent.market, intent.is_buy, intent.price, intent.size,
                intent.tif, intent.order_type, intent.reduce_only,
                client_id_int(intent.client_id), intent.expiry, intent.trigger_price,
                intent.trigger_kind,
            )  # fmt: skip
        case wire.Cancel():
            return engine.CancelOrder(intent.account, intent.market, intent.order_id)
        case wire.CancelByClientId():
            return engine.CancelByClientId(
                intent.account, intent.market, client_id_int(intent.client_id)
            )
        case wire.CancelAll():
            market = engine.ALL_MARKETS if intent.market == wire.ALL_MARKETS else intent.market
            return engine.CancelAll(intent.account, market)
        case wire.Modify():
            return engine.ModifyOrder(
                intent.account, intent.market, intent.order_id, intent.price, intent.size
            )
        case wire.ScheduleCancel():
            return engine.ScheduleCancel(intent.account, intent.time)
        case wire.SetLeverage():
            return engine.SetLeverage(
                intent.account, intent.market, intent.leverage, intent.isolated
            )
        case wire.UpdateIsolatedMargin():
            return engine.UpdateIsolatedMargin(intent.account, intent.market, intent.delta)
        case wire.Withdraw():
            if intent.destination != intent.account:
                raise UnsupportedIntent("withdrawals are paid to the account's own address")
            return engine.Withdraw(intent.account, intent.amount)
        case wire.ApproveAgent():
            return engine.ApproveAgent(intent.account, intent.agent, intent.valid_until)
    raise UnsupportedIntent(f"unknown intent {type(intent).__name__}")


def envelope(signed: wire.SignedIntent) -> Signed:
    """The ``Signed`` engine command for a verified intent."""
    intent = signed.intent
    return Signed(signed.signer, intent.nonce, intent.expires_after, command_from_intent(intent))
