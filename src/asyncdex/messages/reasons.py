"""Numbered reasons: why a command was rejected, why an order left the book.

Invariants: numbers never change once released (they are journaled, hashed and shown to
clients); codes are grouped by the stage that decides them, as exchange-core groups its
result codes: 1xx input checks (read no state), 2xx state checks, 3xx risk, 4xx matching.
"""

from __future__ import annotations

from enum import IntEnum


class Reject(IntEnum):
    # 1xx: the command itself is wrong, whatever the state
    UNKNOWN_MARKET = 100
    INVALID_SIZE = 101
    INVALID_PRICE = 102
    PRICE_OFF_TICK = 103
    SIZE_OFF_LOT = 104
    BELOW_MIN_VALUE = 105
    SIZE_TOO_LARGE = 106
    PRICE_TOO_LARGE = 107
    INVALID_ORDER_TYPE = 108
    INVALID_TRIGGER = 109
    INVALID_LEVERAGE = 110
    INVALID_AMOUNT = 111
    ALREADY_EXPIRED = 112
    UNKNOWN_PUBLISHER = 113
    INVALID_TIME = 114
    NOT_SIGNABLE = 115  # a system command (deposit, oracle price, tick) inside a Signed envelope
    NOT_BATCHABLE = 116  # in a Batch: not a trading command, or another account's
    INVALID_BUILDER_FEE = 117  # not a 20-byte builder, or a fee outside 0..the cap
    # 2xx: the command does not fit the state
    UNKNOWN_ORDER = 200
    NOT_ORDER_OWNER = 201
    DUPLICATE_CLIENT_ID = 202
    UNKNOWN_CLIENT_ID = 203
    UNKNOWN_ACCOUNT = 204
    TOO_MANY_ORDERS = 205
    NO_MARK_PRICE = 206
    OUT_OF_ORDER_L1_MESSAGE = 207
    MODE_CHANGE_WITH_POSITION = 208
    NOT_ISOLATED = 209
    BUILDER_NOT_APPROVED = 210  # the account never approved this order's builder
    BUILDER_FEE_ABOVE_APPROVED = 211  # the order's builder fee exceeds the approved maximum
    BUILDER_BALANCE_TOO_LOW = 212  # a builder needs some account value to be approved
    # 25x: authorization of a signed intent (stateful part; signatures are checked earlier)
    UNKNOWN_AGENT = 250
    AGENT_EXPIRED = 251
    AGENT_NOT_ALLOWED = 252  # agents may not withdraw or approve agents
    AGENT_TAKEN = 253  # the agent address already signs for another account
    NONCE_ALREADY_USED = 254
    NONCE_TOO_LOW = 255  # not above the smallest of the signer's kept nonces
    NONCE_OUT_OF_WINDOW = 256  # more than 2 days before or 1 day after the sequencer's time
    INTENT_EXPIRED = 257
    # 3xx: risk
    INSUFFICIENT_MARGIN = 300
    REDUCE_ONLY_WOULD_INCREASE = 301
    INSUFFICIENT_COLLATERAL = 302
    WITHDRAWALS_PAUSED = 303  # protective mode: settlement lags, withdrawals wait
    COLLATERAL_CAP_EXCEEDED = 304  # the deposit would take the venue past MAX_COLLATERAL
    # 4xx: matching
    POST_ONLY_WOULD_CROSS = 400
    FOK_NOT_FILLED = 401


class CancelReason(IntEnum):
    USER = 1
    IOC_REMAINDER = 2
    SELF_TRADE = 3
    EXPIRED = 4
    REDUCE_ONLY = 5
    LIQUIDATION = 6
    SCHEDULED = 7
    MARGIN = 8
    MODIFIED_AWAY = 9
