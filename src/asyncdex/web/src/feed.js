// The native WebSocket (/v1/ws): one socket, resubscribed after every reconnect, and book
// mirrors that are only shown while they are exact.
//
// Invariants:
// - A book applies a delta only when its prevSeq is the book's seq; anything else (a lost
//   message, a "dropped" notice, a crossing after a delta, a reconnect) marks it out of sync
//   and asks the node for a fresh snapshot. While out of sync it shows no levels.
// - Every subscription is remembered and sent again on each new socket, so a reconnect
//   resyncs books (the snapshot) and resumes trades, account and intent updates.
// - A crossed book is out of sync only for a continuous market. A batch-auction market's
//   book holds the orders waiting for the next auction and may be crossed until it runs
//   (docs/engine.md, "Batch auctions"): it is one when GET /v1/venue says so or its snapshot
//   carries "auction": true, and then a crossed book is shown as it is.

export class BookMirror {
  constructor(market, auction = false) {
    this.market = market;
    this.auction = auction; // a batch-auction market: crossed between auctions is normal
    this.seq = null;
    this.bids = new Map(); // price string -> size string
    this.asks = new Map();
    this.synced = false;
    this.resyncs = 0;
    this.reason = "loading";
  }

  /** Returns true when the caller must resubscribe for a fresh snapshot. */
  apply(message) {
    if (message.type === "snapshot") {
      this.bids = new Map(message.bids.map(([p, s]) => [p, s]));
      this.asks = new Map(message.asks.map(([p, s]) => [p, s]));
      this.seq = message.seq;
      if (message.auction) this.auction = true;
      this.synced = this.auction || !this.crossed();
      this.reason = this.synced ? null : "crossed snapshot";
      return !this.synced;
    }
    if (message.type === "dropped") return this.lose("the node dropped this book (slow reader)");
    if (message.type !== "delta" || !this.synced) return false; // superseded by the snapshot asked for
    if (message.prevSeq !== this.seq) return this.lose(`gap: expected prevSeq ${this.seq}, got ${message.prevSeq}`);
    for (const [side, price, size] of message.changes) {
      const levels = side === "bid" ? this.bids : this.asks;
      if (Number(size) === 0) levels.delete(price);
      else levels.set(price, size);
    }
    this.seq = message.seq;
    if (!this.auction && this.crossed()) return this.lose("crossed after a delta");
    return false;
  }

  lose(reason) {
    this.synced = false;
    this.reason = reason;
    this.resyncs += 1;
    return true;
  }

  best(levels, buy) {
    let best = null;
    for (const p of levels.keys()) {
      const v = Number(p);
      if (best === null || (buy ? v > best : v < best)) best = v;
    }
    return best;
  }

  crossed() {
    const bid = this.best(this.bids, true);
    const ask = this.best(this.asks, false);
    return bid !== null && ask !== null && bid >= ask;
  }

  /** For a batch-auction book: the price and size the next auction would clear at if no
   * order came or went, by the engine's rule (docs/engine.md, "The clearing price"): the
   * largest executed volume, then the smallest imbalance, then closest to the mark (none:
   * the lowest), then the lower. Prices are counted in ticks so the grid is exact; between
   * two order prices only the grid price closest to the mark can win. Null when nothing
   * crosses. Indicative only: the engine decides at the auction. */
  indicativeClearing(tick, mark = null) {
    if (mark !== null && !(Number(mark) > 0)) mark = null; // no mark price
    // exact integers: prices in ticks, the mark in units of the finer of tick and mark,
    // sizes in units of their finest decimal
    const places = (x) => (String(x).split(".")[1] ?? "").length;
    const sizeScale = 10 ** Math.max(0, ...[...this.bids.values(), ...this.asks.values()].map(places));
    const scale = 10 ** Math.max(places(tick), mark === null ? 0 : places(mark));
    const unit = Math.round(Number(tick) * scale);
    const toTicks = (p) => Math.round((Number(p) * scale) / unit);
    const bids = [...this.bids].map(([p, s]) => [toTicks(p), Math.round(Number(s) * sizeScale)]);
    const asks = [...this.asks].map(([p, s]) => [toTicks(p), Math.round(Number(s) * sizeScale)]);
    if (!bids.length || !asks.length) return null;
    const markUnits = mark === null ? null : Math.round(Number(mark) * scale);
    const prices = [...new Set([...bids, ...asks].map(([p]) => p))].sort((a, b) => a - b);
    const candidates = [...prices];
    for (let i = 0; i + 1 < prices.length; i++) {
      const [lo, hi] = [prices[i], prices[i + 1]];
      if (hi - lo < 2) continue;
      // inside a gap demand and supply are constant: only the grid price the tie rules
      // prefer can win (closest to the mark, the lower of two; no mark: the lowest)
      const below = markUnits === null ? lo + 1 : Math.min(hi - 1, Math.max(lo + 1, Math.floor(markUnits / unit)));
      candidates.push(below);
      if (below + 1 < hi) candidates.push(below + 1);
    }
    let best = null;
    for (const p of candidates) {
      let demand = 0;
      let supply = 0;
      for (const [q, s] of bids) if (q >= p) demand += s;
      for (const [q, s] of asks) if (q <= p) supply += s;
      const volume = Math.min(demand, supply);
      if (volume <= 0) continue;
      const distance = markUnits === null ? 0 : Math.abs(p * unit - markUnits);
      const key = [-volume, Math.abs(demand - supply), distance, p];
      if (best === null || less(key, best.key)) best = { key, price: p, volume, demand, supply };
    }
    if (best === null) return null;
    const price = (best.price * unit) / scale;
    return { price, size: best.volume / sizeScale, demand: best.demand / sizeScale, supply: best.supply / sizeScale };
  }

  sorted(buy) {
    const levels = [...(buy ? this.bids : this.asks)].map(([p, s]) => [Number(p), Number(s), p, s]);
    levels.sort((a, b) => (buy ? b[0] - a[0] : a[0] - b[0]));
    return levels;
  }
}

function less(a, b) {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

/** The due time of a batch-auction market's next auction: the next multiple of its
 * interval of the node's clock after `now` (the auction runs with the first command sequenced
 * at or after it). */
export function nextAuctionTime(intervalMs, now) {
  return (Math.floor(now / intervalMs) + 1) * intervalMs;
}

export class Feed {
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers; // {message(msg), state(text, live)}
    this.subs = new Map(); // key -> op
    this.socket = null;
    this.nextId = 1;
    this.backoff = 250;
    this.connects = 0;
  }

  connect() {
    const socket = new WebSocket(this.url);
    this.socket = socket;
    this.handlers.state("connecting…", false);
    socket.onopen = () => {
      this.connects += 1;
      this.backoff = 250;
      this.handlers.state(this.connects > 1 ? "live (reconnected)" : "live", true);
      for (const op of this.subs.values()) this.send({ ...op });
      this.handlers.reconnected?.(this.connects);
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.handlers.message(message);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.handlers.state(`disconnected, reconnecting in ${(this.backoff / 1000).toFixed(1)} s`, false);
      this.handlers.disconnected?.();
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 5000);
    };
  }

  send(op) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ ...op, id: this.nextId++ }));
    }
  }

  subscribe(op) {
    const key = JSON.stringify(op);
    this.subs.set(key, { op: "subscribe", ...op });
    this.send({ op: "subscribe", ...op });
  }

  unsubscribe(op) {
    const key = JSON.stringify(op);
    if (this.subs.delete(key)) this.send({ op: "unsubscribe", ...op });
  }

  /** Subscribing again to a book answers a fresh snapshot: that is the resync. */
  resync(market) {
    this.send({ op: "subscribe", channel: "book", market });
  }
}
