// The on-chain claim of a finalized withdrawal: Settlement.claimWithdrawal(batchNumber,
// withdrawalId, account, amount, proof, index), which pays `account` whoever calls it.
//
// Invariants:
// - The call's arguments are exactly what GET /v1/withdrawals/{id}/proof answers; the page
//   adds nothing, so a claim can pay no one but the withdrawal's own account. Integers may
//   be numbers, decimal strings or BigInts; a number beyond 2^53 (which JSON.parse cannot
//   hold exactly) is refused rather than encoded wrong.
// - With an injected EIP-1193 wallet the page sends the transaction itself
//   (eth_sendTransaction to the venue's settlement contract, on the venue's chain id) and
//   reads the token balance through the wallet; with a local key on a local venue the node
//   relays it (POST /v1/dev/claim/{id}, embedded chain only). Either way the contract alone
//   decides, and its refusal is shown in words.
import { bytesToHex, hexToBytes, keccak } from "./signing.js";

const encoder = new TextEncoder();

function selector(signature) {
  return keccak(encoder.encode(signature)).slice(0, 4);
}

function word(value) {
  // a JSON number past 2^53 has already lost digits in JSON.parse: refuse it, never round
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw new Error(`${value} is not exactly representable here; the claim needs it exact`);
  }
  const out = new Uint8Array(32);
  let v = BigInt(value);
  for (let i = 31; i >= 0 && v > 0n; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
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

const CLAIM = selector("claimWithdrawal(uint256,uint256,address,uint256,bytes32[],uint256)");

/** ABI-encoded claimWithdrawal call data for a proof from GET /v1/withdrawals/{id}/proof. */
export function encodeClaim(proof) {
  const nodes = proof.proof.map((node) => hexToBytes(node, 32));
  return bytesToHex(concat([
    CLAIM,
    word(proof.batch),
    word(proof.withdrawalId),
    word(BigInt(proof.account)),
    word(proof.amount),
    word(6 * 32), // the dynamic array's offset: after the six head words
    word(proof.index),
    word(nodes.length),
    ...nodes,
  ]));
}

// claimWithdrawal's errors (Settlement.sol), by selector, in words.
const REFUSALS = new Map([
  ["BatchNotFinal(uint256)", (n) => `batch ${n} is not final on chain yet: claim once it is finalized`],
  ["WithdrawalAlreadyClaimed(uint256)", (n) => `withdrawal ${n} is already claimed`],
  ["InvalidProof()", () => "the proof does not match the batch's withdrawals root"],
  ["InsufficientFunds(uint256,uint256)", (a, b) => `the contract holds ${b} micro-USDC, less than the ${a} claimed`],
].map(([signature, words]) => [bytesToHex(selector(signature)), [signature, words]]));

/** A wallet's revert error in words, when it carries one of claimWithdrawal's errors. */
export function refusalWords(error) {
  const data = [error?.data?.data, error?.data, error?.error?.data].find((d) => typeof d === "string" && d.startsWith("0x"));
  if (data && data.length >= 10) {
    const known = REFUSALS.get(data.slice(0, 10).toLowerCase());
    if (known) {
      const [signature, words] = known;
      const count = signature.split(",").length - (signature.endsWith("()") ? 1 : 0);
      const args = [];
      for (let i = 0; i < count; i++) args.push(BigInt(`0x${data.slice(10 + 64 * i, 74 + 64 * i)}`));
      return words(...args);
    }
  }
  return error?.message ?? String(error);
}

const TOKEN = bytesToHex(selector("token()"));
const BALANCE_OF = selector("balanceOf(address)");

async function call(ethereum, to, data) {
  return ethereum.request({ method: "eth_call", params: [{ to, data }, "latest"] });
}

async function tokenBalance(ethereum, token, account) {
  return BigInt(await call(ethereum, token, bytesToHex(concat([BALANCE_OF, word(BigInt(account))]))));
}

/** Send the claim from an injected wallet; resolves to {txHash, balanceBefore, balanceAfter}. */
export async function claimWithWallet(ethereum, venue, from, proof) {
  const contract = venue.settlementContract;
  const chainId = BigInt(await ethereum.request({ method: "eth_chainId" }));
  if (chainId !== BigInt(venue.chainId)) {
    throw new Error(`the wallet is on chain ${chainId}; switch it to the venue's chain ${venue.chainId}`);
  }
  const token = `0x${(await call(ethereum, contract, TOKEN)).slice(-40)}`;
  const balanceBefore = await tokenBalance(ethereum, token, proof.account);
  let txHash;
  try {
    txHash = await ethereum.request({ method: "eth_sendTransaction", params: [{ from, to: contract, data: encodeClaim(proof) }] });
  } catch (error) {
    throw new Error(refusalWords(error));
  }
  for (let i = 0; i < 240; i++) {
    const receipt = await ethereum.request({ method: "eth_getTransactionReceipt", params: [txHash] });
    if (receipt) {
      if (BigInt(receipt.status) !== 1n) throw new Error(`the claim transaction ${txHash} reverted`);
      return { txHash, balanceBefore, balanceAfter: await tokenBalance(ethereum, token, proof.account) };
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`the claim transaction ${txHash} is not mined after two minutes`);
}
