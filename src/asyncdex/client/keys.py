"""Keys that sign intents: an account's own key, and agent (API) keys that trade for it.

Invariants:

- A wallet signs as exactly one ``signer`` address and acts for exactly one ``account``. For a
  :class:`Wallet` the two are the same; an :class:`AgentWallet` signs with its own key for a
  master account, which must first have approved it (``ApproveAgent``, signed by the master
  key — never by an agent, which the intent codec refuses to sign and every verifier refuses
  to accept).
- Agents may trade and cancel for the master but not withdraw or approve agents; the engine
  enforces this (``AGENT_NOT_ALLOWED``), and this module does not restate that rule.
- A private key never appears in ``repr``, ``str`` or an exception message.
- Keys are 32 bytes; text forms are 64 hex digits with an optional ``0x``; a key file holds
  that text and nothing else (surrounding whitespace allowed).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from asyncdex.fairness.sealing import SealedIntent, SealingKey, seal_intent
from asyncdex.signing.eip712 import Domain, LocalSigner, checksum_address, parse_address
from asyncdex.signing.intents import ApproveAgent, Intent, SignedIntent, sign_intent


class InvalidKey(ValueError):
    """Text or a file that does not hold a valid secp256k1 private key."""


def parse_private_key(text: str) -> bytes:
    """Parse 64 hex digits (optionally ``0x``-prefixed) into a 32-byte private key."""
    body = text.strip()
    if body[:2] in ("0x", "0X"):
        body = body[2:]
    if len(body) != 64:
        raise InvalidKey(f"a private key is 64 hex digits, got {len(body)} characters")
    try:
        key = bytes.fromhex(body)
    except ValueError:
        raise InvalidKey("a private key is 64 hex digits: found a non-hex character") from None
    try:
        LocalSigner(key)  # refuses 0 and values >= the curve order
    except ValueError:
        raise InvalidKey("not a valid secp256k1 private key (zero or above the order)") from None
    return key


def read_private_key(path: str | os.PathLike[str]) -> bytes:
    """Read a key file: 64 hex digits (optionally ``0x``), surrounding whitespace allowed."""
    source = Path(path)
    try:
        text = source.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise InvalidKey(f"{source}: not a hex key file") from None
    except OSError as exc:
        raise InvalidKey(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        return parse_private_key(text)
    except InvalidKey as exc:
        raise InvalidKey(f"{source}: {exc}") from None


def _address(value: bytes | str) -> bytes:
    if isinstance(value, str):
        return parse_address(value)
    if type(value) is not bytes or len(value) != 20:
        raise ValueError("an address is 20 bytes or 0x followed by 40 hex digits")
    return value


class BaseWallet:
    """A signing key and the account it acts for."""

    __slots__ = ("_signer", "account")

    def __init__(self, signer: LocalSigner, account: bytes) -> None:
        self._signer = signer
        self.account: bytes = account

    @property
    def address(self) -> bytes:
        """The address of this wallet's key: the ``signer`` the engine sees."""
        return self._signer.address

    @property
    def is_agent(self) -> bool:
        return self._signer.address != self.account

    def sign(self, domain: Domain, intent: Intent) -> SignedIntent:
        """Sign ``intent`` under ``domain``; its ``account`` must be this wallet's account."""
        if intent.account != self.account:
            raise ValueError(
                f"intent acts for {checksum_address(intent.account)}, this wallet for "
                f"{checksum_address(self.account)}"
            )
        return sign_intent(self._signer, domain, intent)

    def seal(
        self, key: SealingKey, signed: SignedIntent, epoch: int, *, fee_cap: int = 0
    ) -> SealedIntent:
        """Seal an intent this wallet signed for ``epoch`` of the committee key ``key``."""
        return seal_intent(key, self._signer, signed, epoch, fee_cap=fee_cap)


class Wallet(BaseWallet):
    """An account's own key: it may do everything, including withdraw and approve agents."""

    __slots__ = ()

    def __init__(self, private_key: bytes) -> None:
        signer = _signer(private_key)
        super().__init__(signer, signer.address)

    @classmethod
    def from_hex(cls, text: str) -> Wallet:
        return cls(parse_private_key(text))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Wallet:
        return cls(read_private_key(path))

    @classmethod
    def generate(cls) -> Wallet:
        """A fresh random key (from the OS's CSPRNG)."""
        return cls(_random_key())

    def approve_agent_intent(
        self,
        agent: bytes | str | AgentWallet,
        *,
        nonce: int,
        valid_until: int = 0,
        name: str = "",
        expires_after: int = 0,
    ) -> ApproveAgent:
        """The ``ApproveAgent`` intent letting ``agent`` sign for this account.

        ``valid_until`` is in ms (0: no end; a past time revokes). Sign it with
        :meth:`sign` — only this wallet's key can.
        """
        agent_address = agent.address if isinstance(agent, AgentWallet) else _address(agent)
        return ApproveAgent(self.account, nonce, expires_after, agent_address, name, valid_until)

    def __repr__(self) -> str:
        return f"Wallet({checksum_address(self.account)})"


class AgentWallet(BaseWallet):
    """An API key that signs for ``master``; useless until the master approves it."""

    __slots__ = ()

    def __init__(self, private_key: bytes, master: bytes | str) -> None:
        master_address = _address(master)
        signer = _signer(private_key)
        if signer.address == master_address:
            raise ValueError("an agent key must differ from its master's key: use Wallet")
        super().__init__(signer, master_address)

    @property
    def master(self) -> bytes:
        return self.account

    @classmethod
    def from_hex(cls, text: str, master: bytes | str) -> AgentWallet:
        return cls(parse_private_key(text), master)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], master: bytes | str) -> AgentWallet:
        return cls(read_private_key(path), master)

    @classmethod
    def generate(cls, master: bytes | str) -> AgentWallet:
        """A fresh random agent key for ``master`` (from the OS's CSPRNG)."""
        return cls(_random_key(), master)

    def __repr__(self) -> str:
        agent, master = checksum_address(self.address), checksum_address(self.account)
        return f"AgentWallet({agent} for {master})"


def _signer(private_key: bytes) -> LocalSigner:
    try:
        return LocalSigner(private_key)
    except ValueError:
        raise InvalidKey("not a valid secp256k1 private key (32 bytes, 0 < key < n)") from None


def _random_key() -> bytes:
    while True:
        key = secrets.token_bytes(32)
        try:
            LocalSigner(key)
        except ValueError:  # probability ~2^-128: zero or above the curve order
            continue
        return key
