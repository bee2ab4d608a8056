// The asyncdex trading page: market data over /v1/ws, the account over the REST API, and
// intents signed here (EIP-712, see signing.js) and sent to POST /v1/intents.
//
// Everything it loads comes from the node that serves it: the venue (GET /v1/venue), the
// markets, the book, trades and candles, the account. Keys never leave the browser.
import "./style.css";
import { CandlestickSeries, HistogramSeries, createChart } from "lightweight-charts";
import { decimalsOf, fmt, fmtTime, fmtUsd, fromUnits, toUnits } from "./decimal.js";
import { claimWithWallet } from "./claim.js";
import { BookMirror, Feed, nextAuctionTime } from "./feed.js";
import * as sig from "./signing.js";

const $ = (id) => document.getElementById(id);

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

const STEPS = ["received", "sequenced", "executed", "committed", "finalized"];
const INTERVALS = { "1m": 60e3, "5m": 300e3, "15m": 900e3, "1h": 3600e3, "4h": 14400e3, "1d": 86400e3 };
const BOOK_DEPTH = 10;
const KEY_STORE = "asyncdex.localKey";
const FAUCET_USDC = 10_000n;

// Engine reasons in words (asyncdex.messages.reasons.Reject); unknown names are spelled out.
const REASONS = {
  INSUFFICIENT_MARGIN: "Not enough margin: the order would take the account below its initial margin",
  INSUFFICIENT_COLLATERAL: "Not enough free collateral",
  REDUCE_ONLY_WOULD_INCREASE: "Reduce-only: this order would increase the position",
  POST_ONLY_WOULD_CROSS: "Post-only (ALO): the order would trade immediately",
  FOK_NOT_FILLED: "Fill-or-kill: not enough liquidity to fill it all",
  PRICE_OFF_TICK: "The price is not a multiple of the market's tick",
  SIZE_OFF_LOT: "The size is not a multiple of the market's lot",
  BELOW_MIN_VALUE: "The order is below the market's minimum value",
  SIZE_TOO_LARGE: "The size is larger than the market allows",
  PRICE_TOO_LARGE: "The price is larger than the market allows",
  UNKNOWN_ACCOUNT: "No account yet: deposit first",
  UNKNOWN_ORDER: "No such open order (already filled or cancelled?)",
  TOO_MANY_ORDERS: "Too many open orders",
  NO_MARK_PRICE: "The market has no mark price yet",
  UNKNOWN_AGENT: "The agent key is not approved for this account",
  AGENT_EXPIRED: "The agent key's approval has expired",
  AGENT_NOT_ALLOWED: "An agent key may not do this: sign with the account key",
  NONCE_ALREADY_USED: "Nonce already used (a replayed intent)",
  NONCE_TOO_LOW: "Nonce too low (a replayed or very old intent)",
  NONCE_OUT_OF_WINDOW: "The nonce is out of the accepted time window: check the computer's clock",
  INTENT_EXPIRED: "The intent expired before it was sequenced",
  WITHDRAWALS_PAUSED: "Withdrawals are paused while settlement catches up",
  INVALID_LEVERAGE: "Leverage out of range for this market",
  MODE_CHANGE_WITH_POSITION: "Cannot switch cross/isolated with an open position",
};

function reasonWords(name) {
  if (!name) return "Rejected";
  return REASONS[name] ?? name.charAt(0) + name.slice(1).toLowerCase().replaceAll("_", " ");
}

const S = {
  venue: null,
  markets: new Map(), // symbol -> terms (+ display decimals)
  byId: new Map(),
  live: new Map(), // symbol -> GET /v1/markets entry
  change24h: new Map(),
  symbol: null,
  book: null,
  grouping: 1,
  trades: [],
  interval: "1m",
  candles: [],
  wallet: null, // {mode, address, key?}
  agent: null, // {address, key}
  account: null,
  accountMissing: false,
  orders: [],
  fills: [],
  intents: [],
  tab: "positions",
  editing: null,
  editValues: {},
  withdrawText: "",
  ticket: { side: "buy", type: "limit", unit: "base" },
  message: null,
};
const nonces = new Map(); // signer -> NonceSource
let feed;
let chart;
let candleSeries;
let volumeSeries;

function market() {
  return S.markets.get(S.symbol);
}

// -- HTTP

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { ok: response.ok, status: response.status, body };
}

async function getJson(path) {
  const result = await api(path);
  if (!result.ok) throw new Error(result.body?.error ?? `HTTP ${result.status}`);
  return result.body;
}

// -- rendering, at most once a frame per part

const dirty = new Set();
let frame = 0;
function schedule(...parts) {
  for (const p of parts) dirty.add(p);
  if (!frame) frame = requestAnimationFrame(flush);
}
// Render costs, read by benchmarks/web_bench.py (never sent anywhere).
const perf = { bookMessages: 0, bookRenders: 0, bookRenderMs: 0, maxBookRenderMs: 0, bookShownAt: null };

function flush() {
  frame = 0;
  const parts = [...dirty];
  dirty.clear();
  for (const part of parts) {
    if (part !== "book") {
      RENDER[part]();
      continue;
    }
    const started = performance.now();
    renderBook();
    const spent = performance.now() - started;
    perf.bookRenders += 1;
    perf.bookRenderMs += spent;
    perf.maxBookRenderMs = Math.max(perf.maxBookRenderMs, spent);
    if (perf.bookShownAt === null && S.book?.synced) perf.bookShownAt = performance.now();
  }
}

const RENDER = {
  stats: renderStats,
  book: renderBook,
  trades: renderTrades,
  wallet: renderWallet,
  tabs: renderTabs,
  estimate: renderEstimate,
};

// -- header: market selector and stats

function renderStats() {
  const m = market();
  const live = S.live.get(S.symbol);
  if (!m || !live) return;
  const change = S.change24h.get(S.symbol);
  const rate = live.fundingRatePpb / 1e7; // ppb -> percent
  const next = Math.max(0, live.nextFundingTime - Date.now());
  const stat = (label, value, cls = "", id = undefined) =>
    h("div", { class: "stat" }, h("span", { class: "label" }, label), h("span", { class: `num ${cls}`, id }, value));
  $("stats").replaceChildren(...[
    stat("Mark", fmt(live.markPrice, m.pDp), "", "stat-mark"),
    stat("Index", fmt(live.indexPrice, m.pDp)),
    stat("24h change", change === undefined ? "—" : `${change >= 0 ? "+" : ""}${change.toFixed(2)}%`, change >= 0 ? "buy-text" : "sell-text"),
    stat("Funding / 1h", `${rate.toFixed(4)}%`, rate >= 0 ? "buy-text" : "sell-text"),
    stat("Next funding", new Date(next).toISOString().slice(11, 19)),
    // the node's clock decides; the auction runs with the first command sequenced after it
    isAuction(m) ? stat("Batch auction", `every ${m.auctionIntervalMs} ms`, "", "stat-auction") : null,
    isAuction(m) ? stat("Next auction", new Date(nextAuctionTime(m.auctionIntervalMs, Date.now())).toISOString().slice(11, 23), "", "stat-next-auction") : null,
  ].filter(Boolean));
}

async function refreshMarkets() {
  try {
    const { markets } = await getJson("/v1/markets");
    for (const entry of markets) S.live.set(entry.symbol, entry);
    schedule("stats", "estimate");
  } catch {
    /* shown by the connection state */
  }
}

async function refresh24h() {
  const symbol = S.symbol;
  try {
    const since = Date.now() - 86400e3;
    const { candles } = await getJson(`/v1/markets/${symbol}/candles?interval=1h&start=${since}`);
    const live = S.live.get(symbol);
    if (candles.length && live?.markPrice) {
      const open = Number(candles[0].open);
      S.change24h.set(symbol, ((Number(live.markPrice) - open) / open) * 100);
      schedule("stats");
    }
  } catch {
    /* keep the last */
  }
}

// -- order book

function groupedLevels(buy) {
  const m = market();
  const step = Number(m.tick) * S.grouping;
  const out = new Map();
  for (const [price, size] of S.book.sorted(buy)) {
    const key = S.grouping === 1 ? price : (buy ? Math.floor(price / step) : Math.ceil(price / step)) * step;
    out.set(key, (out.get(key) ?? 0) + size);
  }
  return [...out].slice(0, BOOK_DEPTH);
}

/** A batch-auction market (GET /v1/venue): orders wait for the next auction, the book may be
 * crossed between auctions. */
function isAuction(m) {
  return m?.ordering === "batch_auction";
}

function renderBook() {
  const m = market();
  const book = S.book;
  const status = $("book-status");
  if (!book || !book.synced) {
    status.hidden = false;
    status.textContent = book && book.reason !== "loading"
      ? `Resyncing from a snapshot (${book.reason})…`
      : "Loading the book…";
    $("asks").replaceChildren();
    $("bids").replaceChildren();
    $("spread").replaceChildren();
    return;
  }
  status.hidden = true;
  const asks = groupedLevels(false);
  const bids = groupedLevels(true);
  let total = 0;
  const withTotals = (levels) => levels.map(([p, s]) => [p, s, (total += s)]);
  total = 0;
  const askRows = withTotals(asks);
  const askMax = total;
  total = 0;
  const bidRows = withTotals(bids);
  const max = Math.max(askMax, total) || 1;
  // a batch-auction book between auctions: the levels that cross the other side wait to
  // trade in the next auction, marked apart from the rest
  const bestBid = bids.length ? bids[0][0] : null;
  const bestAsk = asks.length ? asks[0][0] : null;
  const crossing = (p, buy) => bestBid !== null && bestAsk !== null && (buy ? p >= bestAsk : p <= bestBid);
  const row = (buy) => ([p, s, t]) =>
    h("div", { class: crossing(p, buy) ? "level crossing" : "level", "data-price": p },
      h("div", { class: "bar", style: `width:${((100 * t) / max).toFixed(1)}%` }),
      h("span", { class: "price num" }, fmt(p, m.pDp)),
      h("span", { class: "num" }, fmt(s, m.sDp)),
      h("span", { class: "num" }, fmt(t, m.sDp)));
  $("asks").replaceChildren(...askRows.map(row(false)));
  $("bids").replaceChildren(...bidRows.map(row(true)));
  const clearing = asks.length && bids.length && bestBid >= bestAsk
    ? book.indicativeClearing(m.tick, S.live.get(S.symbol)?.markPrice ?? null)
    : null;
  $("spread").classList.toggle("clearing", !!clearing); // two lines: it says more than a spread
  if (clearing) {
    $("spread").replaceChildren(
      h("span", {}, "Indicative clearing ", h("b", { class: "num", id: "indicative-clearing" }, fmt(clearing.price, m.pDp))),
      h("span", { class: "num", id: "indicative-size" }, `${fmt(clearing.size, m.sDp)} ${m.symbol} at the next auction`));
  } else if (asks.length && bids.length) {
    const spread = asks[0][0] - bids[0][0];
    const mid = (asks[0][0] + bids[0][0]) / 2;
    $("spread").replaceChildren(
      h("span", {}, "Spread ", h("b", { class: "num", id: "spread-value" }, fmt(spread, m.pDp))),
      h("span", { class: "num" }, `${((100 * spread) / mid).toFixed(3)}%`));
  } else {
    $("spread").replaceChildren(h("span", { class: "dim" }, "one side empty"));
  }
  $("book-panel").dataset.seq = book.seq;
  $("book-panel").dataset.resyncs = book.resyncs;
}

function setupGrouping() {
  const m = market();
  const select = $("grouping");
  select.replaceChildren(...[1, 10, 100].map((k) =>
    h("option", { value: k }, fmt(Number(m.tick) * k, m.pDp))));
  select.value = String(S.grouping);
}

// -- trades and candles

function renderTrades() {
  const m = market();
  if (!S.trades.length) {
    $("trades").replaceChildren(h("div", { class: "dim" }, "No trades yet."));
    return;
  }
  $("trades").replaceChildren(...S.trades.slice(0, 30).map((t) =>
    h("div", { class: "level trade" },
      h("span", { class: `num ${t.side === "buy" ? "buy-text" : "sell-text"}` }, fmt(t.price, m.pDp)),
      h("span", { class: "num" }, fmt(t.size, m.sDp)),
      h("span", { class: "num dim" }, fmtTime(t.time)))));
}

function setupChart() {
  chart = createChart($("chart"), {
    autoSize: true,
    layout: { background: { color: "#161b22" }, textColor: "#8892a0", attributionLogo: false },
    grid: { vertLines: { color: "#1f252d" }, horzLines: { color: "#1f252d" } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#262d36" },
    rightPriceScale: { borderColor: "#262d36" },
  });
  candleSeries = chart.addSeries(CandlestickSeries, {
    upColor: "#2ebd85", downColor: "#f0616d", borderVisible: false,
    wickUpColor: "#2ebd85", wickDownColor: "#f0616d",
  });
  volumeSeries = chart.addSeries(HistogramSeries, {
    priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false,
  });
  volumeSeries.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  $("intervals").replaceChildren(...Object.keys(INTERVALS).map((name) =>
    h("button", { type: "button", class: name === S.interval ? "on" : "", onclick: () => {
      S.interval = name;
      setupChart.buttons();
      loadCandles();
    } }, name)));
  setupChart.buttons = () => {
    for (const b of $("intervals").children) b.className = b.textContent === S.interval ? "on" : "";
  };
}

function candlePoint(c) {
  return { time: c.start / 1000, open: +c.open, high: +c.high, low: +c.low, close: +c.close };
}
function volumePoint(c) {
  return { time: c.start / 1000, value: +c.volume, color: +c.close >= +c.open ? "rgba(46,189,133,0.5)" : "rgba(240,97,109,0.5)" };
}

async function loadCandles() {
  const m = market();
  const symbol = S.symbol;
  const span = INTERVALS[S.interval];
  const since = Math.max(0, Date.now() - 400 * span);
  candleSeries.applyOptions({ priceFormat: { type: "price", precision: m.pDp, minMove: Number(m.tick) } });
  const { candles } = await getJson(`/v1/markets/${symbol}/candles?interval=${S.interval}&start=${since}`);
  if (symbol !== S.symbol) return;
  S.candles = candles;
  candleSeries.setData(candles.map(candlePoint));
  volumeSeries.setData(candles.map(volumePoint));
  $("chart-title").textContent = `${symbol}-USD · ${S.interval}${candles.length ? "" : " · no trades yet"}`;
}

function addTradeToCandles(trade) {
  const span = INTERVALS[S.interval];
  const start = Math.floor(trade.time / span) * span;
  const last = S.candles[S.candles.length - 1];
  let candle;
  if (last && last.start === start) {
    candle = last;
    candle.high = String(Math.max(+candle.high, +trade.price));
    candle.low = String(Math.min(+candle.low, +trade.price));
    candle.close = trade.price;
    candle.volume = String(+candle.volume + +trade.size);
  } else if (!last || start > last.start) {
    candle = { start, open: trade.price, high: trade.price, low: trade.price, close: trade.price, volume: trade.size };
    S.candles.push(candle);
    $("chart-title").textContent = `${S.symbol}-USD · ${S.interval}`;
  } else {
    return; // older than the newest candle: the REST history has it already
  }
  candleSeries.update(candlePoint(candle));
  volumeSeries.update(volumePoint(candle));
}

// -- the socket

function onMessage(message) {
  if (message.op !== undefined) {
    // replies to ops; a refused one is logged (subscriptions are sent again on reconnect)
    if (message.op === "error") console.warn("stream error", message);
    return;
  }
  const channel = message.channel;
  if (channel === "book" && message.market === S.symbol && S.book) {
    perf.bookMessages += 1;
    if (S.book.apply(message)) feed.resync(S.symbol);
    schedule("book");
  } else if (channel === "trades" && message.market === S.symbol) {
    for (const trade of message.trades) {
      S.trades.unshift(trade);
      addTradeToCandles(trade);
    }
    S.trades.length = Math.min(S.trades.length, 100);
    schedule("trades");
  } else if (channel === "account") {
    refreshAccountSoon();
  } else if (channel === "intents") {
    updateIntent(message.intentId, message);
  }
}

function setConnection(text, live) {
  const conn = $("conn");
  conn.textContent = text;
  conn.className = `conn ${live ? "live" : "down"}`;
}

async function selectMarket(symbol) {
  if (feed && S.symbol) {
    feed.unsubscribe({ channel: "book", market: S.symbol });
    feed.unsubscribe({ channel: "trades", market: S.symbol });
  }
  S.symbol = symbol;
  location.hash = symbol;
  $("market-select").value = symbol;
  S.book = new BookMirror(symbol, isAuction(S.markets.get(symbol)));
  S.grouping = 1;
  setupGrouping();
  schedule("book", "stats", "estimate");
  feed.subscribe({ channel: "book", market: symbol });
  feed.subscribe({ channel: "trades", market: symbol });
  renderTicket();
  const { trades } = await getJson(`/v1/markets/${symbol}/trades?limit=50`);
  if (symbol !== S.symbol) return;
  const seen = new Set(S.trades.map((t) => `${t.seq}:${t.makerOrder}:${t.takerOrder}`));
  S.trades = [...S.trades.filter((t) => t.market === symbol), ...trades.filter((t) => !seen.has(`${t.seq}:${t.makerOrder}:${t.takerOrder}`))];
  S.trades.sort((a, b) => b.seq - a.seq);
  schedule("trades");
  await loadCandles();
  refresh24h();
}

// -- wallet and signing

function localKeyHex() {
  return localStorage.getItem(KEY_STORE);
}

function useLocalKey(hex) {
  const key = sig.hexToBytes(hex.startsWith("0x") ? hex : `0x${hex}`, 32);
  const address = sig.addressOfKey(key);
  localStorage.setItem(KEY_STORE, sig.bytesToHex(key));
  S.wallet = { mode: "local", address, key };
  loadAgent();
  onConnected();
}

async function useInjected() {
  const [address] = await window.ethereum.request({ method: "eth_requestAccounts" });
  S.wallet = { mode: "injected", address: address.toLowerCase() };
  loadAgent();
  onConnected();
}

function agentStore() {
  return `asyncdex.agent.${S.wallet.address}`;
}

function loadAgent() {
  const stored = localStorage.getItem(agentStore());
  if (!stored) {
    S.agent = null;
    return;
  }
  const key = sig.hexToBytes(stored, 32);
  S.agent = { key, address: sig.addressOfKey(key) };
}

function disconnect() {
  if (S.wallet) feed.unsubscribe({ channel: "account", address: S.wallet.address });
  if (S.wallet) feed.unsubscribe({ channel: "intents", account: S.wallet.address });
  S.wallet = null;
  S.agent = null;
  S.account = null;
  S.orders = [];
  S.fills = [];
  schedule("wallet", "tabs");
}

function onConnected() {
  feed.subscribe({ channel: "account", address: S.wallet.address });
  feed.subscribe({ channel: "intents", account: S.wallet.address });
  refreshAccount();
  schedule("wallet", "tabs");
  renderTicket();
}

/** Sign with the agent key when one is approved (no wallet pop-up), else the account key. */
async function signIntent(kind, message, accountKeyOnly) {
  const domain = S.venue.domain;
  const digest = sig.intentDigest(domain, kind, message);
  if (S.agent && !accountKeyOnly) return { digest, signature: sig.signDigest(S.agent.key, digest) };
  if (S.wallet.mode === "local") return { digest, signature: sig.signDigest(S.wallet.key, digest) };
  const typed = sig.typedData(domain, kind, message);
  const hex = await window.ethereum.request({
    method: "eth_signTypedData_v4",
    params: [S.wallet.address, JSON.stringify(typed)],
  });
  const signature = sig.hexToBytes(hex, 65);
  if (signature[64] < 27) signature[64] += 27;
  return { digest, signature };
}

function nextNonce(signer) {
  if (!nonces.has(signer)) nonces.set(signer, new sig.NonceSource());
  return nonces.get(signer).next();
}

/** Sign one intent, send it, and follow it through its lifecycle in the Intents tab. */
async function submit(kind, fields, label, { accountKeyOnly = false, onExecuted = null } = {}) {
  const signer = S.agent && !accountKeyOnly ? S.agent.address : S.wallet.address;
  const message = { account: S.wallet.address, nonce: nextNonce(signer), expiresAfter: 0n, ...fields };
  const entry = { id: null, label, kind, time: Date.now(), status: null, seq: null, detail: "", error: null, market: fields.market, onExecuted };
  S.intents.unshift(entry);
  try {
    const { digest, signature } = await signIntent(kind, message, accountKeyOnly);
    entry.id = sig.bytesToHex(digest);
    schedule("tabs");
    const result = await api("/v1/intents", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: `{"intents":[${sig.toJson(kind, message, signature)}]}`,
    });
    if (!result.ok) {
      entry.error = `Refused: ${result.body?.error ?? `HTTP ${result.status}`}`;
      schedule("tabs");
      return entry;
    }
    const receipt = result.body.receipts[0];
    if (receipt.intentId !== entry.id) {
      entry.error = "The node's intent id differs from the digest signed (wrong chain or contract)";
    }
    entry.seq = receipt.seq;
    advance(entry, "sequenced");
  } catch (error) {
    entry.error = error.message ?? String(error);
  }
  schedule("tabs");
  return entry;
}

function advance(entry, status) {
  if (STEPS.indexOf(status) > STEPS.indexOf(entry.status ?? "received")) entry.status = status;
  else entry.status ??= status;
}

function updateIntent(id, update) {
  const entry = S.intents.find((e) => e.id === id);
  if (!entry) return;
  advance(entry, update.status);
  if (update.events) describeOutcome(entry, update.events);
  if (update.txHash) entry.txHash = update.txHash;
  schedule("tabs");
  if (entry.onExecuted && STEPS.indexOf(entry.status) >= 2) {
    const callback = entry.onExecuted;
    entry.onExecuted = null;
    callback(entry);
  }
}

function describeOutcome(entry, events) {
  const m = S.byId.get(entry.market) ?? market();
  const parts = [];
  let filled = 0n;
  let notional = 0n;
  for (const event of events) {
    if (event.type === "Rejected") entry.error = reasonWords(event.reasonName);
    else if (event.type === "TradeExecuted") {
      filled += BigInt(event.size);
      notional += BigInt(event.size) * BigInt(event.price);
    } else if (event.type === "OrderRested") {
      // on a batch-auction market every order first waits in the book for the next auction
      parts.push(isAuction(m) ? `waiting for the auction as #${event.orderId}` : `resting as #${event.orderId}`);
    }
    else if (event.type === "OrderCancelled") parts.push(`cancelled #${event.orderId}`);
    else if (event.type === "OrderModified") parts.push(`modified #${event.orderId}`);
    else if (event.type === "Withdrawn") {
      entry.withdrawalId = event.withdrawalId;
      parts.push(`withdrawal #${event.withdrawalId}`);
    } else if (event.type === "AgentApproved") parts.push("agent approved");
    else if (event.type === "LeverageSet") parts.push(`leverage ${event.leverage}x ${event.isolated ? "isolated" : "cross"}`);
    else if (event.type === "TriggerArmed") parts.push("trigger armed");
  }
  if (filled > 0n && m) {
    const average = Number(notional / filled) / 10 ** m.priceDecimals;
    parts.unshift(`filled ${fmt(fromUnits(filled, m.szDecimals), m.sDp)} @ ${fmt(average, m.pDp)}`);
  }
  entry.detail = parts.join(", ");
  entry.events = events;
}

// Committed and finalized are also polled, in case a status passed while the socket was down.
async function pollIntents() {
  const last = S.venue.settlementContract ? "finalized" : "executed";
  let asked = 0;
  for (const entry of S.intents.slice(0, 20)) {
    if (!entry.id || entry.error || entry.status === last || !entry.status || asked >= 5) continue;
    asked += 1;
    const result = await api(`/v1/intents/${entry.id}`);
    if (result.ok) updateIntent(entry.id, result.body);
  }
  for (const entry of S.intents) {
    if (entry.withdrawalId !== undefined && entry.status === "finalized" && !entry.proof) {
      const proof = await api(`/v1/withdrawals/${entry.withdrawalId}/proof`);
      if (proof.ok) {
        entry.proof = proof.body;
        schedule("tabs");
      }
    }
  }
}

// -- account

// An account busy with fills sends many events: they are coalesced into at most one refresh
// (three GETs) a second, so the page stays well inside the node's per-IP request budget
// (1,200 weight a minute by default, 2 a GET).
const ACCOUNT_REFRESH_MS = 1000;
let accountTimer = 0;
let accountRefreshedAt = 0;
function refreshAccountSoon() {
  if (accountTimer) return;
  const wait = Math.max(100, accountRefreshedAt + ACCOUNT_REFRESH_MS - Date.now());
  accountTimer = setTimeout(() => {
    accountTimer = 0;
    refreshAccount();
  }, wait);
}

async function refreshAccount() {
  if (!S.wallet) return;
  accountRefreshedAt = Date.now();
  const address = S.wallet.address;
  const account = await api(`/v1/accounts/${address}`);
  // an account exists from its first deposit: until then there is nothing else to ask
  const [orders, fills] = account.ok
    ? await Promise.all([api(`/v1/accounts/${address}/orders`), api(`/v1/accounts/${address}/fills?limit=50`)])
    : [{ ok: false }, { ok: false }];
  if (!S.wallet || S.wallet.address !== address) return;
  S.accountMissing = account.status === 404;
  S.account = account.ok ? account.body : null;
  S.orders = orders.ok ? orders.body.orders : [];
  S.fills = fills.ok ? fills.body.fills : [];
  schedule("wallet", "tabs", "estimate");
}

function renderWallet() {
  const box = $("wallet");
  if (!S.wallet) {
    const paste = h("input", { id: "key-input", type: "password", placeholder: "paste a private key (64 hex digits)", "aria-label": "Private key" });
    box.replaceChildren(h("div", { class: "wallet-box" },
      h("b", {}, "Account"),
      window.ethereum
        ? h("button", { type: "button", id: "connect-injected", onclick: () => useInjected().catch((e) => showMessage(e.message, true)) }, "Connect browser wallet")
        : h("span", { class: "dim" }, "No browser wallet found."),
      h("span", { class: "badge" }, "LOCAL KEY — for local test venues only"),
      h("span", { class: "dim" }, "A key kept in this browser's storage, unencrypted. Never use it for real funds."),
      h("div", { class: "row" },
        h("button", { type: "button", id: "generate-key", onclick: () => useLocalKey(sig.bytesToHex(sig.randomKey())) }, "Generate local key"),
        localKeyHex() ? h("button", { type: "button", id: "reuse-key", onclick: () => useLocalKey(localKeyHex()) }, "Use saved key") : null),
      h("div", { class: "row" }, paste,
        h("button", { type: "button", onclick: () => {
          try {
            useLocalKey(paste.value.trim());
          } catch (e) {
            showMessage(`Key: ${e.message}`, true);
          }
        } }, "Use"))));
    return;
  }
  const a = S.account;
  const embedded = S.venue.settlementChain === "embedded";
  const rows = [];
  if (a) {
    const equity = Number(a.crossEquity);
    const free = equity - Number(a.crossInitialMargin);
    const ratio = equity > 0 ? (100 * Number(a.crossMaintenanceMargin)) / equity : 0;
    rows.push(
      h("span", {}, "Equity"), h("span", { class: "num", id: "equity" }, fmtUsd(a.equity)),
      h("span", {}, "Free collateral"), h("span", { class: "num", id: "free" }, fmtUsd(Math.max(0, free))),
      h("span", {}, "Margin ratio"), h("span", { class: "num" }, `${ratio.toFixed(2)}%`));
  }
  // the box is redrawn on every account update: what is typed lives in S, and focus returns
  const typing = document.activeElement?.id === "withdraw-amount";
  const withdrawInput = h("input", { id: "withdraw-amount", class: "num", inputmode: "decimal", placeholder: "USDC", "aria-label": "Withdraw amount",
    value: S.withdrawText, oninput: (e) => { S.withdrawText = e.target.value; } });
  box.replaceChildren(h("div", { class: "wallet-box" },
    h("div", { class: "row" }, h("b", {}, "Account"),
      h("button", { type: "button", class: "small", style: "flex:0", onclick: disconnect }, "Disconnect")),
    S.wallet.mode === "local"
      ? h("span", { class: "badge" }, "LOCAL KEY — stored in this browser, test venues only")
      : h("span", { class: "dim" }, "Browser wallet"),
    h("span", { class: "addr", id: "address" }, sig.checksumAddress(S.wallet.address)),
    S.agent
      ? h("span", { class: "dim" }, `Orders signed by agent ${S.agent.address.slice(0, 10)}… (no pop-ups)`)
      : h("button", { type: "button", id: "approve-agent", onclick: approveAgent }, "Approve an agent key for trading"),
    a ? h("div", { class: "kv" }, rows)
      : h("span", { class: "dim", id: "no-account" }, S.accountMissing ? "No account on the venue yet: deposit to open one." : "Loading…"),
    embedded
      ? h("button", { type: "button", id: "faucet", onclick: faucet }, `Deposit ${FAUCET_USDC.toLocaleString("en-US")} test USDC (local faucet)`)
      : null,
    a ? h("div", { class: "row" }, withdrawInput,
      h("button", { type: "button", id: "withdraw", onclick: () => withdraw(S.withdrawText) }, "Withdraw")) : null));
  if (typing) withdrawInput.focus();
}

async function faucet() {
  const result = await api("/v1/dev/faucet", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ account: S.wallet.address, amount: Number(FAUCET_USDC * 1_000_000n) }),
  });
  if (result.ok) showMessage(`Deposit sent on the local chain (tx ${result.body.txHash.slice(0, 12)}…); credited once confirmed.`);
  else showMessage(`Faucet: ${result.body?.error ?? result.status}`, true);
  for (let i = 0; i < 40 && !S.account; i++) {
    await new Promise((r) => setTimeout(r, 500));
    await refreshAccount();
  }
}

async function withdraw(text) {
  let amount;
  try {
    amount = toUnits(text, 6, "Amount");
  } catch (e) {
    showMessage(e.message, true);
    return;
  }
  S.withdrawText = "";
  S.tab = "intents";
  schedule("wallet", "tabs");
  await submit("Withdraw", { amount, destination: S.wallet.address }, `Withdraw ${fmtUsd(text)} USDC`, { accountKeyOnly: true });
}

/** Claim a finalized withdrawal on chain: from the injected wallet, or relayed by a local
 * venue's node for a local key (which holds no gas). Shows the tx and the balance change. */
async function claim(entry) {
  if (entry.claiming || entry.claim) return;
  entry.claiming = true;
  entry.claimError = null;
  schedule("tabs");
  try {
    if (S.wallet.mode === "injected") {
      entry.claim = await claimWithWallet(window.ethereum, S.venue, S.wallet.address, entry.proof);
    } else {
      const result = await api(`/v1/dev/claim/${entry.withdrawalId}`, { method: "POST" });
      if (!result.ok) throw new Error(result.body?.error ?? `HTTP ${result.status}`);
      entry.claim = {
        txHash: result.body.txHash,
        balanceBefore: BigInt(result.body.tokenBalanceBefore),
        balanceAfter: BigInt(result.body.tokenBalance),
      };
    }
  } catch (error) {
    entry.claimError = `Claim refused: ${error.message ?? error}`;
  }
  entry.claiming = false;
  schedule("tabs");
}

function claimCell(e) {
  if (e.claim) {
    const change = e.claim.balanceAfter - e.claim.balanceBefore;
    return h("span", { class: "claimed" }, ` · claimed in tx ${e.claim.txHash.slice(0, 12)}…: wallet USDC `,
      h("span", { class: "num" }, `${change >= 0n ? "+" : ""}${fmtUsd(fromUnits(change, 6))}`),
      ` (now ${fmtUsd(fromUnits(e.claim.balanceAfter, 6))})`);
  }
  if (!e.proof) return null;
  const local = S.wallet?.mode === "local" && S.venue.settlementChain === "embedded";
  const can = e.proof.claimable && (local || S.wallet?.mode === "injected");
  return h("span", {},
    can ? " · " : e.proof.claimable
      ? " · finalized: claim it on the base chain from a wallet that holds gas"
      : ` · ${e.proof.status}: claimable on chain once finalized`,
    can ? h("button", { type: "button", class: "small claim", "data-withdrawal": e.withdrawalId, disabled: e.claiming, onclick: () => claim(e) },
      e.claiming ? "Claiming…" : "Claim on chain") : null,
    e.claimError ? h("span", { class: "error" }, ` ${e.claimError}`) : null);
}

async function approveAgent() {
  const key = sig.randomKey();
  const address = sig.addressOfKey(key);
  const onExecuted = (done) => {
    if (!done.error) {
      localStorage.setItem(agentStore(), sig.bytesToHex(key));
      S.agent = { key, address };
      schedule("wallet");
    } else showMessage(`Agent: ${done.error}`, true);
  };
  await submit("ApproveAgent", { agent: address, name: "web page", validUntil: 0n }, "Approve agent key", { accountKeyOnly: true, onExecuted });
}

// -- the order ticket

function showMessage(text, error = false) {
  S.message = { text, error };
  const node = $("ticket-msg");
  if (node) {
    node.textContent = text;
    node.className = error ? "error" : "dim";
  }
}

function seg(name, options, value, onpick) {
  return h("div", { class: "seg", role: "group", "aria-label": name },
    options.map(([key, label, extra = ""]) =>
      h("button", { type: "button", "data-value": key, class: key === value ? `on ${extra}` : "", onclick: () => onpick(key) }, label)));
}

function renderTicket() {
  const m = market();
  const t = S.ticket;
  if (!m) return;
  const rerender = (key) => (value) => {
    t[key] = value;
    renderTicket();
  };
  const needsPrice = t.type === "limit";
  const trigger = t.type === "stop" || t.type === "tp";
  const form = $("ticket");
  const keep = {};
  for (const input of form.querySelectorAll("input, select")) keep[input.name] = input.type === "checkbox" ? input.checked : input.value;
  form.replaceChildren(...[
    seg("Side", [["buy", "Buy / Long", "buy-on"], ["sell", "Sell / Short", "sell-on"]], t.side, rerender("side")),
    seg("Order type", [["limit", "Limit"], ["market", "Market"], ["stop", "Stop"], ["tp", "Take profit"]], t.type, rerender("type")),
    trigger ? h("label", {}, "Trigger price (USD)", h("input", { name: "trigger", class: "num", inputmode: "decimal" })) : null,
    needsPrice || trigger
      ? h("label", {}, trigger ? "Limit price (empty: market when triggered)" : "Price (USD)",
        h("input", { name: "price", class: "num", inputmode: "decimal", oninput: () => schedule("estimate") }))
      : null,
    h("label", {}, h("span", {}, `Size (${t.unit === "usd" ? "USD" : m.symbol}) `,
      h("button", { type: "button", class: "small", id: "size-unit", onclick: () => rerender("unit")(t.unit === "usd" ? "base" : "usd") }, `in ${t.unit === "usd" ? m.symbol : "USD"}`)),
    h("input", { name: "size", class: "num", inputmode: "decimal", oninput: () => schedule("estimate") })),
    h("div", { class: "row" },
      needsPrice ? h("label", {}, "Time in force", h("select", { name: "tif" },
        h("option", { value: "GTC" }, "GTC"), h("option", { value: "IOC" }, "IOC"), h("option", { value: "ALO" }, "ALO (post only)"))) : null,
      h("label", { style: "flex-direction:row;align-items:center;gap:6px" }, h("input", { type: "checkbox", name: "reduceOnly" }), "Reduce only")),
    isAuction(m)
      ? h("div", { class: "auction-note", id: "auction-note" },
        `Batch auction every ${m.auctionIntervalMs} ms: orders wait for the next auction and fill at its single clearing price (taker fee); IOC and market orders left unfilled are then cancelled.`)
      : null,
    h("div", { class: "estimate", id: "estimate" }),
    h("button", { type: "submit", id: "submit-order", class: t.side }, S.wallet
      ? `${t.side === "buy" ? "Buy" : "Sell"} ${m.symbol}`
      : "Connect an account to trade"),
    h("div", { id: "ticket-msg", class: S.message?.error ? "error" : "dim", role: "alert" }, S.message?.text ?? ""),
    h("details", {}, h("summary", { class: "dim" }, "Leverage and margin mode"),
      h("div", { class: "row" },
        h("input", { name: "leverage", class: "num", type: "number", min: 1, max: m.maxLeverage, value: currentLeverage(), "aria-label": "Leverage" }),
        h("select", { name: "mode", "aria-label": "Margin mode" }, h("option", { value: "cross" }, "Cross"), h("option", { value: "isolated" }, "Isolated")),
        h("button", { type: "button", id: "set-leverage", onclick: setLeverage }, "Set"))),
  ].filter(Boolean));
  for (const input of form.querySelectorAll("input, select")) {
    if (!(input.name in keep) || input.name === "leverage") continue;
    if (input.type === "checkbox") input.checked = keep[input.name];
    else if ([...(input.options ?? [{ value: keep[input.name] }])].some((o) => o.value === keep[input.name])) input.value = keep[input.name];
  }
  renderEstimate();
}

function currentLeverage() {
  const position = S.account?.positions.find((p) => p.symbol === S.symbol);
  return position ? position.leverage : market().maxLeverage;
}

function ticketValues() {
  const form = $("ticket");
  const value = (name) => form.elements[name]?.value?.trim() ?? "";
  return { price: value("price"), trigger: value("trigger"), size: value("size"), tif: value("tif") || "GTC", reduceOnly: !!form.elements.reduceOnly?.checked };
}

/** The order's size in base units, from base or USD (rounded down to the lot). */
function sizeUnits(values, m, refPrice) {
  if (S.ticket.unit === "usd") {
    const usd = toUnits(values.size, 6, "Size");
    const price = toUnits(String(refPrice), 6, "Price");
    const lot = toUnits(m.lot, m.szDecimals);
    const raw = (usd * 10n ** BigInt(m.szDecimals)) / price;
    return (raw / lot) * lot;
  }
  return toUnits(values.size, m.szDecimals, "Size");
}

function referencePrice(values) {
  const live = S.live.get(S.symbol);
  if (values.price) return Number(values.price);
  if (values.trigger) return Number(values.trigger);
  return Number(live?.markPrice ?? 0);
}

function renderEstimate() {
  const node = $("estimate");
  const m = market();
  if (!node || !m) return;
  const values = ticketValues();
  const price = referencePrice(values);
  let size;
  try {
    size = values.size ? Number(fromUnits(sizeUnits(values, m, price), m.szDecimals)) : 0;
  } catch {
    node.textContent = "";
    return;
  }
  if (!size || !price) {
    node.textContent = `Fees: maker ${(m.makerFeePpm / 1e4).toFixed(3)}%, taker ${(m.takerFeePpm / 1e4).toFixed(3)}%`;
    return;
  }
  const leverage = currentLeverage();
  const position = S.account?.positions.find((p) => p.symbol === S.symbol);
  const isolated = !!position?.isolated;
  const notional = size * price;
  const fee = (notional * m.takerFeePpm) / 1e6;
  const margin = notional / leverage;
  const mm = m.maintenanceMarginPpm / 1e6;
  const buy = S.ticket.side === "buy";
  let liq;
  let liqLabel;
  const a = S.account;
  if (a && !isolated && Number(position?.size ?? 0) === 0) {
    // cross, as the API's formula: the account's equity E and maintenance M, other marks
    // held fixed; the new position's PnL and maintenance move with the price x
    const E = Number(a.crossEquity) - fee;
    const M = Number(a.crossMaintenanceMargin);
    liq = buy ? (M - E + size * price) / (size * (1 - mm)) : (E - M + size * price) / (size * (1 + mm));
    liqLabel = "Liq. price ≈ (cross)";
  } else {
    // this order's margin alone, liquidated where it meets maintenance
    liq = buy ? (price * (1 - 1 / leverage)) / (1 - mm) : (price * (1 + 1 / leverage)) / (1 + mm);
    liqLabel = "Liq. price ≈ (this margin only)";
  }
  const free = a ? Number(a.crossEquity) - Number(a.crossInitialMargin) : null;
  const short = free !== null && margin + fee > free && !values.reduceOnly;
  node.replaceChildren(...[
    h("div", { class: "kv" },
      h("span", {}, "Size"), h("span", { class: "num" }, `${fmt(size, m.sDp)} ${m.symbol}`),
      h("span", {}, "Value"), h("span", { class: "num" }, fmtUsd(notional)),
      h("span", {}, `Margin at ${leverage}x`), h("span", { class: "num" }, fmtUsd(margin)),
      h("span", {}, "Fee (taker, at most)"), h("span", { class: "num" }, fmtUsd(fee)),
      values.reduceOnly ? null : h("span", {}, liqLabel),
      values.reduceOnly ? null : h("span", { class: "num" }, liq > 0 ? fmt(liq, m.pDp) : "none")),
    short ? h("div", { class: "error", id: "estimate-warning" }, `Needs ${fmtUsd(margin + fee)} of margin; ${fmtUsd(Math.max(0, free))} is free`) : null,
  ].filter(Boolean));
}

async function placeFromTicket(event) {
  event.preventDefault();
  const m = market();
  if (!S.wallet) {
    showMessage("Connect an account first.", true);
    return;
  }
  const t = S.ticket;
  const values = ticketValues();
  let fields;
  try {
    const trigger = t.type === "stop" || t.type === "tp";
    const price = values.price ? toUnits(values.price, m.priceDecimals, "Price") : 0n;
    if (t.type === "limit" && !values.price) throw new Error("Price: enter a limit price");
    const triggerPrice = trigger ? toUnits(values.trigger, m.priceDecimals, "Trigger price") : 0n;
    const size = sizeUnits(values, m, referencePrice(values));
    if (size <= 0n) throw new Error("Size: enter a size of at least one lot");
    const isMarket = t.type === "market" || (trigger && !values.price);
    fields = {
      market: BigInt(m.marketId),
      isBuy: t.side === "buy",
      price: isMarket ? 0n : price,
      size,
      orderType: isMarket ? sig.ORDER_TYPE.MARKET : sig.ORDER_TYPE.LIMIT,
      tif: isMarket ? sig.TIF.IOC : sig.TIF[values.tif],
      reduceOnly: values.reduceOnly,
      clientId: sig.NO_CLIENT_ID,
      expiry: 0n,
      triggerPrice,
      triggerKind: t.type === "stop" ? sig.TRIGGER.STOP : t.type === "tp" ? sig.TRIGGER.TAKE_PROFIT : sig.TRIGGER.NONE,
    };
  } catch (e) {
    showMessage(e.message, true);
    return;
  }
  const sizeText = fmt(fromUnits(fields.size, m.szDecimals), m.sDp);
  const how = fields.orderType === sig.ORDER_TYPE.MARKET ? "market" : `@ ${fmt(values.price, m.pDp)}`;
  const when = fields.triggerKind === sig.TRIGGER.NONE ? ""
    : ` ${t.type === "stop" ? "stop" : "take-profit"} at ${fmt(values.trigger, m.pDp)}`;
  const label = `${t.side === "buy" ? "Buy" : "Sell"} ${sizeText} ${m.symbol} ${how}${when}${values.reduceOnly ? ", reduce-only" : ""}`;
  showMessage(`Signing and sending: ${label}`);
  const onExecuted = (done) => {
    showMessage(done.error ? `${label}: ${done.error}` : `${label}: ${done.detail || "executed"}`, !!done.error);
    refreshAccount();
  };
  const entry = await submit("PlaceOrder", fields, label, { onExecuted });
  if (entry.error && !entry.status) showMessage(entry.error, true);
}

async function setLeverage() {
  const form = $("ticket");
  const leverage = Number(form.elements.leverage.value);
  const isolated = form.elements.mode.value === "isolated";
  if (!S.wallet) return showMessage("Connect an account first.", true);
  if (!Number.isInteger(leverage) || leverage < 1) return showMessage("Leverage: a whole number from 1", true);
  const onExecuted = (done) => {
    showMessage(done.error ? `Leverage: ${done.error}` : `Leverage set to ${leverage}x ${isolated ? "isolated" : "cross"}`, !!done.error);
    refreshAccount();
  };
  await submit("SetLeverage", { market: BigInt(market().marketId), leverage: BigInt(leverage), isolated },
    `Leverage ${leverage}x ${isolated ? "isolated" : "cross"} ${S.symbol}`, { onExecuted });
}

// -- account tabs

const TABS = [["positions", "Positions"], ["orders", "Open orders"], ["fills", "Fills"], ["funding", "Funding"], ["intents", "Intents"]];

function renderTabs() {
  const focused = document.activeElement;
  if (focused && focused.tagName === "INPUT" && $("tab-body").contains(focused)) {
    // never re-render under a trader's typing; try again shortly
    setTimeout(() => schedule("tabs"), 300);
    return;
  }
  $("tabs").replaceChildren(...TABS.map(([key, label]) => {
    const count = key === "positions" ? openPositions().length : key === "orders" ? S.orders.length : null;
    return h("button", { type: "button", role: "tab", "data-tab": key, class: S.tab === key ? "on" : "", onclick: () => {
      S.tab = key;
      if (key === "funding") loadFunding();
      schedule("tabs");
    } }, count ? `${label} (${count})` : label);
  }));
  const body = { positions: positionsTable, orders: ordersTable, fills: fillsTable, funding: fundingTable, intents: intentsTable }[S.tab]();
  $("tab-body").replaceChildren(body);
}

function openPositions() {
  return (S.account?.positions ?? []).filter((p) => Number(p.size) !== 0);
}

function table(id, headers, rows, empty) {
  if (!rows.length) return h("div", { class: "dim", id }, empty);
  // a header starting with "<" heads a left-aligned (text) column
  const head = headers.map((x) => (x.startsWith("<") ? h("th", { class: "left" }, x.slice(1)) : h("th", {}, x)));
  return h("table", { id }, h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows));
}

function positionsTable() {
  return table("positions", ["<Market", "Size", "Entry", "Mark", "uPnL", "Liq. price", "Leverage", "Margin", ""],
    openPositions().map((p) => {
      const m = S.markets.get(p.symbol);
      const long = Number(p.size) > 0;
      const pnl = Number(p.unrealizedPnl);
      return h("tr", { "data-market": p.symbol },
        h("td", {}, p.symbol),
        h("td", { class: long ? "buy-text" : "sell-text" }, fmt(p.size, m.sDp)),
        h("td", {}, fmt(p.entryPrice, m.pDp)),
        h("td", {}, fmt(p.markPrice, m.pDp)),
        h("td", { class: pnl >= 0 ? "buy-text" : "sell-text" }, fmtUsd(p.unrealizedPnl)),
        h("td", { class: "liq" }, fmt(p.liquidationPrice, m.pDp)),
        h("td", {}, `${p.leverage}x ${p.isolated ? "isolated" : "cross"}`),
        h("td", {}, fmtUsd(p.marginUsed)),
        h("td", {}, h("button", { type: "button", class: "small", onclick: () => closePosition(p) }, "Close")));
    }), S.wallet ? "No open positions." : "Connect an account to see positions.");
}

async function closePosition(p) {
  const m = S.markets.get(p.symbol);
  const size = toUnits(p.size.replace("-", ""), m.szDecimals);
  const long = !p.size.startsWith("-");
  await submit("PlaceOrder", {
    market: BigInt(m.marketId), isBuy: !long, price: 0n, size, orderType: sig.ORDER_TYPE.MARKET, tif: sig.TIF.IOC,
    reduceOnly: true, clientId: sig.NO_CLIENT_ID, expiry: 0n, triggerPrice: 0n, triggerKind: sig.TRIGGER.NONE,
  }, `Close ${p.symbol} ${p.size}`);
}

function ordersTable() {
  return table("orders", ["<Market", "<Side", "Price", "Size", "Filled", "Type", "", ""], S.orders.map((o) => {
    const m = S.markets.get(o.symbol);
    const editing = S.editing === o.orderId;
    // what is typed survives the table's re-renders (account updates arrive any time)
    const edits = S.editValues;
    const priceInput = h("input", { class: "num", name: "edit-price", value: edits.price ?? o.price ?? "", size: 9, "aria-label": "New price", oninput: (e) => { edits.price = e.target.value; } });
    const sizeInput = h("input", { class: "num", name: "edit-size", value: edits.size ?? o.size, size: 8, "aria-label": "New size", oninput: (e) => { edits.size = e.target.value; } });
    const type = [o.orderType === 1 ? "market" : ["GTC", "IOC", "FOK", "ALO"][o.tif],
      o.reduceOnly ? "reduce-only" : "", o.triggerKind ? `${o.triggerKind === 1 ? "stop" : "TP"} @ ${fmt(o.triggerPrice, m.pDp)}` : ""].filter(Boolean).join(" · ");
    return h("tr", { "data-order": o.orderId },
      h("td", {}, o.symbol),
      h("td", { class: `left ${o.side === "buy" ? "buy-text" : "sell-text"}` }, o.side),
      h("td", {}, editing ? priceInput : fmt(o.price, m.pDp)),
      h("td", {}, editing ? sizeInput : fmt(o.size, m.sDp)),
      h("td", {}, fmt(Number(o.origSize) - Number(o.size), m.sDp)),
      h("td", {}, type),
      h("td", {}, editing
        ? h("button", { type: "button", class: "small", onclick: () => modifyOrder(o, priceInput.value, sizeInput.value) }, "Save")
        : h("button", { type: "button", class: "small", onclick: () => {
          S.editing = o.orderId;
          S.editValues = {};
          schedule("tabs");
        } }, "Modify")),
      h("td", {}, h("button", { type: "button", class: "small", onclick: () => cancelOrder(o) }, "Cancel")));
  }), S.wallet ? "No open orders." : "Connect an account to see orders.");
}

async function cancelOrder(o) {
  await submit("Cancel", { market: BigInt(o.market), orderId: BigInt(o.orderId) }, `Cancel #${o.orderId} ${o.symbol}`);
}

async function modifyOrder(o, price, size) {
  const m = S.markets.get(o.symbol);
  try {
    const fields = { market: BigInt(o.market), orderId: BigInt(o.orderId), price: toUnits(price, m.priceDecimals, "Price"), size: toUnits(size, m.szDecimals, "Size") };
    S.editing = null;
    S.editValues = {};
    await submit("Modify", fields, `Modify #${o.orderId} to ${size} @ ${price}`, {
      onExecuted: (done) => {
        if (done.error) showMessage(`Modify #${o.orderId}: ${done.error}`, true);
        refreshAccount();
      },
    });
  } catch (e) {
    showMessage(e.message, true);
  }
}

function fillsTable() {
  return table("fills", ["<Time", "<Market", "<Side", "Price", "Size", "Fee", "Liquidity"], S.fills.map((f) => {
    const m = S.markets.get(f.symbol);
    return h("tr", {},
      h("td", {}, fmtTime(f.time)), h("td", { class: "left" }, f.symbol),
      h("td", { class: `left ${f.side === "buy" ? "buy-text" : "sell-text"}` }, f.side),
      h("td", {}, fmt(f.price, m.pDp)), h("td", {}, fmt(f.size, m.sDp)),
      h("td", {}, fmt(f.fee, 6)), h("td", {}, f.liquidity));
  }), "No fills yet.");
}

// The market's funding history (GET /v1/markets/{symbol}/funding, last 24 h) and what the
// account's positions have paid (positive: paid, negative: received).
async function loadFunding() {
  const symbol = S.symbol;
  try {
    const { funding } = await getJson(`/v1/markets/${symbol}/funding?start=${Date.now() - 86400e3}`);
    if (symbol === S.symbol) {
      S.funding = funding.slice().reverse();
      schedule("tabs");
    }
  } catch {
    /* shown as empty */
  }
}

function fundingTable() {
  const m = market();
  const paid = (S.account?.positions ?? []).filter((p) => Number(p.fundingPaid) !== 0);
  const history = table("funding-history", ["<Time", "<Market", "Rate", "Index"], (S.funding ?? []).map((f) =>
    h("tr", {}, h("td", {}, fmtTime(f.time)), h("td", { class: "left" }, S.symbol),
      h("td", { class: f.ratePpb >= 0 ? "buy-text" : "sell-text" }, `${(f.ratePpb / 1e7).toFixed(4)}%`),
      h("td", {}, fmt(f.indexPrice, m.pDp)))),
  `No funding in ${S.symbol} in the last 24 hours (every ${m.fundingIntervalMs / 3600e3} h).`);
  const account = paid.length
    ? table("funding-paid", ["<Market", "Funding paid (USDC)"], paid.map((p) =>
      h("tr", {}, h("td", {}, p.symbol), h("td", {}, fmtUsd(p.fundingPaid)))), "")
    : null;
  return h("div", {}, account, history);
}

function intentsTable() {
  const last = S.venue.settlementContract ? 4 : 2;
  return table("intents", ["Time", "<Action", "<Lifecycle", "<Outcome"], S.intents.slice(0, 30).map((e) => {
    const reached = e.status ? STEPS.indexOf(e.status) : -1;
    // a refusal at intake stops at "received"; a rejection by the engine is its execution
    const failedAt = !e.error ? -1 : reached >= 2 ? 2 : 0;
    const steps = STEPS.slice(0, last + 1).map((step, i) =>
      h("span", { class: `step ${i <= reached ? "done" : ""} ${i === failedAt ? "bad" : ""}` },
        i === failedAt ? (i === 2 ? "rejected" : "refused") : step));
    const outcome = e.error ?? (e.detail || (e.status ? "" : "signing…"));
    return h("tr", { "data-intent": e.id ?? "", "data-status": e.status ?? "", "data-claimed": e.claim ? "true" : null },
      h("td", {}, fmtTime(e.time)), h("td", { class: "left" }, e.label),
      h("td", { class: "left" }, h("div", { class: "steps" }, steps)),
      h("td", { class: `left wrap ${e.error ? "error" : ""}` }, outcome, claimCell(e)));
  }), "Intents you sign appear here with their lifecycle: received → sequenced → executed → committed → finalized.");
}

// -- start

async function start() {
  S.venue = await getJson("/v1/venue");
  for (const terms of S.venue.markets) {
    const m = { ...terms, pDp: decimalsOf(terms.tick), sDp: decimalsOf(terms.lot) };
    S.markets.set(terms.symbol, m);
    S.byId.set(terms.marketId, m);
    S.byId.set(BigInt(terms.marketId), m);
  }
  $("market-select").replaceChildren(...S.venue.markets.map((m) => h("option", { value: m.symbol }, `${m.symbol}-USD`)));
  $("market-select").addEventListener("change", (e) => selectMarket(e.target.value));
  $("grouping").addEventListener("change", (e) => {
    S.grouping = Number(e.target.value);
    schedule("book");
  });
  $("ticket").addEventListener("submit", placeFromTicket);
  setupChart();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  feed = new Feed(`${scheme}://${location.host}/v1/ws`, {
    message: onMessage,
    state: setConnection,
    disconnected: () => {
      if (S.book) S.book.lose("the socket closed; waiting for a snapshot");
      schedule("book");
    },
    reconnected: () => refreshAccount(),
  });
  feed.connect();
  await refreshMarkets();
  const wanted = decodeURIComponent(location.hash.slice(1));
  await selectMarket(S.markets.has(wanted) ? wanted : S.venue.markets[0].symbol);
  schedule("wallet", "tabs");
  setInterval(refreshMarkets, 2000);
  // marks move uPnL between account events
  setInterval(() => {
    if (Date.now() - accountRefreshedAt > 4000) refreshAccount();
  }, 5000);
  setInterval(() => pollIntents(), 2000);
  setInterval(() => refresh24h(), 30000);
  setInterval(() => schedule("stats"), 1000);
  // a batch-auction market's next auction comes more often than once a second
  setInterval(() => {
    if (isAuction(market()) && market().auctionIntervalMs < 1000) schedule("stats");
  }, 250);
  document.body.dataset.ready = "true";
}

// exposed for the browser tests and for debugging in the console
window.asyncdex = { S, sig, perf };

start().catch((error) => {
  setConnection(`failed to start: ${error.message}`, false);
});
