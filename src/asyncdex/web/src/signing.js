// EIP-712 signing of asyncdex intents in the browser.
//
// Invariants:
// - The struct types are those of asyncdex.signing.intents: each kind's fields in order, with
//   the one type FIELD_TYPES gives every field name, under the domain {name: "asyncdex",
//   version: "1", chainId, verifyingContract} that GET /v1/venue announces. A test
//   (tests/unit/web/test_signing.py) signs the same intents here and with the SDK and
//   compares digests and signatures byte for byte.
// - Integers are BigInt from end to end (uint64 values exceed 2^53); toJson writes them as
//   bare JSON numbers, as the node's strict JSON parser wants.
// - Signatures are RFC 6979 deterministic and low-s (noble's defaults, as libsecp256k1), so
//   a key signs an intent to exactly the bytes the SDK produces.
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3.js";

export const FIELD_TYPES = {
  account: "address",
  nonce: "uint64",
  expiresAfter: "uint64",
  market: "uint32",
  isBuy: "bool",
  price: "uint64",
  size: "uint64",
  orderType: "uint8",
  tif: "uint8",
  reduceOnly: "bool",
  clientId: "bytes16",
  expiry: "uint64",
  triggerPrice: "uint64",
  triggerKind: "uint8",
  orderId: "uint64",
  time: "uint64",
  leverage: "uint16",
  isolated: "bool",
  delta: "int64",
  amount: "uint64",
  destination: "address",
  agent: "address",
  name: "string",
  validUntil: "uint64",
};

const HEAD = ["account", "nonce", "expiresAfter"];
export const KINDS = {
  PlaceOrder: [...HEAD, "market", "isBuy", "price", "size", "orderType", "tif", "reduceOnly",
    "clientId", "expiry", "triggerPrice", "triggerKind"],
  Cancel: [...HEAD, "market", "orderId"],
  CancelByClientId: [...HEAD, "market", "clientId"],
  CancelAll: [...HEAD, "market"],
  Modify: [...HEAD, "market", "orderId", "price", "size"],
  ScheduleCancel: [...HEAD, "time"],
  SetLeverage: [...HEAD, "market", "leverage", "isolated"],
  UpdateIsolatedMargin: [...HEAD, "market", "delta"],
  Withdraw: [...HEAD, "amount", "destination"],
  ApproveAgent: [...HEAD, "agent", "name", "validUntil"],
};

export const ORDER_TYPE = { LIMIT: 0n, MARKET: 1n };
export const TIF = { GTC: 0n, IOC: 1n, FOK: 2n, ALO: 3n };
export const TRIGGER = { NONE: 0n, STOP: 1n, TAKE_PROFIT: 2n };
export const NO_CLIENT_ID = "0x" + "00".repeat(16);

const DOMAIN_FIELDS = [["name", "string"], ["version", "string"], ["chainId", "uint256"],
  ["verifyingContract", "address"]];

const encoder = new TextEncoder();

export function bytesToHex(bytes) {
  let out = "0x";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export function hexToBytes(hex, size) {
  if (typeof hex !== "string" || !/^0x([0-9a-fA-F]{2})*$/.test(hex)) {
    throw new Error(`expected 0x-hex, got ${hex}`);
  }
  const bytes = new Uint8Array((hex.length - 2) / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 + 2 * i, 4 + 2 * i), 16);
  if (size !== undefined && bytes.length !== size) {
    throw new Error(`expected ${size} bytes, got ${bytes.length}`);
  }
  return bytes;
}

export function keccak(bytes) {
  return keccak_256(bytes);
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function word(value) {
  // two's complement in 256 bits, big endian
  let v = BigInt.asUintN(256, value);
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function encodeValue(type, value, field) {
  if (type === "address") return concat([new Uint8Array(12), hexToBytes(value, 20)]);
  if (type === "bool") {
    if (typeof value !== "boolean") throw new Error(`${field}: expected bool`);
    return word(value ? 1n : 0n);
  }
  if (type === "string") return keccak(encoder.encode(value));
  let m = /^bytes([0-9]+)$/.exec(type);
  if (m) return concat([hexToBytes(value, Number(m[1])), new Uint8Array(32 - Number(m[1]))]);
  m = /^(u?)int([0-9]+)$/.exec(type);
  if (m) {
    if (typeof value !== "bigint") throw new Error(`${field}: expected BigInt`);
    const bits = BigInt(m[2]);
    const [low, high] = m[1] ? [0n, 1n << bits] : [-(1n << (bits - 1n)), 1n << (bits - 1n)];
    if (value < low || value >= high) throw new Error(`${field}: ${value} out of range for ${type}`);
    return word(value);
  }
  throw new Error(`unsupported type ${type}`);
}

function typeString(name, fields) {
  return `${name}(${fields.map(([f, t]) => `${t} ${f}`).join(",")})`;
}

function hashStruct(name, fields, message) {
  const typeHash = keccak(encoder.encode(typeString(name, fields)));
  return keccak(concat([typeHash, ...fields.map(([f, t]) => encodeValue(t, message[f], f))]));
}

function kindFields(kind) {
  const names = KINDS[kind];
  if (!names) throw new Error(`unknown intent kind ${kind}`);
  return names.map((f) => [f, FIELD_TYPES[f]]);
}

/** The 32-byte EIP-712 digest of an intent: its intent id on the node. */
export function intentDigest(domain, kind, message) {
  const separator = hashStruct("EIP712Domain", DOMAIN_FIELDS, {
    ...domain,
    chainId: BigInt(domain.chainId),
  });
  const struct = hashStruct(kind, kindFields(kind), message);
  return keccak(concat([new Uint8Array([0x19, 0x01]), separator, struct]));
}

/** Sign a digest with a 32-byte key: 65 bytes r‖s‖v, v in {27, 28}, low s. */
export function signDigest(privateKey, digest) {
  const recovered = secp256k1.sign(digest, privateKey, { prehash: false, format: "recovered" });
  // noble's recovered form is recovery‖r‖s; Ethereum's is r‖s‖v with v = 27 + recovery
  return concat([recovered.slice(1), new Uint8Array([27 + recovered[0]])]);
}

export function addressOfKey(privateKey) {
  const publicKey = secp256k1.getPublicKey(privateKey, false);
  return bytesToHex(keccak(publicKey.slice(1)).slice(12));
}

export function randomKey() {
  return secp256k1.utils.randomSecretKey();
}

/** EIP-55 mixed-case form of an address, as wallets show it. */
export function checksumAddress(address) {
  const lower = address.toLowerCase().slice(2);
  const hash = bytesToHex(keccak(encoder.encode(lower))).slice(2);
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    out += parseInt(hash[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
  }
  return out;
}

/** The signed intent's JSON form (POST /v1/intents, the socket's submit op). */
export function toJson(kind, message, signature) {
  const parts = [`"kind":${JSON.stringify(kind)}`];
  for (const field of KINDS[kind]) {
    const value = message[field];
    parts.push(`${JSON.stringify(field)}:${typeof value === "bigint" ? value.toString() : JSON.stringify(value)}`);
  }
  if (signature !== undefined) parts.push(`"signature":"${bytesToHex(signature)}"`);
  return `{${parts.join(",")}}`;
}

/** The eth_signTypedData_v4 document of an intent, for an injected wallet. */
export function typedData(domain, kind, message) {
  const values = {};
  for (const field of KINDS[kind]) {
    const value = message[field];
    values[field] = typeof value === "bigint" ? value.toString() : value;
  }
  return {
    types: {
      EIP712Domain: DOMAIN_FIELDS.map(([name, type]) => ({ name, type })),
      [kind]: kindFields(kind).map(([name, type]) => ({ name, type })),
    },
    primaryType: kind,
    domain: { ...domain, chainId: Number(domain.chainId) },
    message: values,
  };
}

/** Nonces as the SDK makes them: millisecond timestamps, strictly increasing per signer. */
export class NonceSource {
  constructor(clock = () => Date.now()) {
    this.clock = clock;
    this.last = 0n;
  }

  next() {
    const now = BigInt(this.clock());
    this.last = now > this.last ? now : this.last + 1n;
    return this.last;
  }
}
