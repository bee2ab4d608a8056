// The native WebSocket (/v1/ws): one socket, resubscribed after every reconnect, and book
// mirrors that are only shown while they are exact.
//
// Invariants:
// - A book applies a delta only when its prevSeq is the book's seq; anything else (a lost
//   message, a "dropped" notice, a crossing after a delta, a reconnect) marks it out of sync
//   and asks the node for a fresh snapshot. While out of sync it shows no levels.
// - Every subscription is remembered and sent again on each new socket, so a reconnect
//   resyncs books (the snapshot) and resumes trades, account and intent updates.

export class BookMirror {
  constructor(market) {
    this.market = market;
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
      this.synced = !this.crossed();
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
    if (this.crossed()) return this.lose("crossed after a delta");
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

  sorted(buy) {
    const levels = [...(buy ? this.bids : this.asks)].map(([p, s]) => [Number(p), Number(s), p, s]);
    levels.sort((a, b) => (buy ? b[0] - a[0] : a[0] - b[0]));
    return levels;
  }
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
