// The native engine core: the reference engine (asyncdex/engine/transition.py) in C++17.
//
// Invariants:
// - The interpreted engine is the specification. Every function here is a port of the
//   reference function of the same name (process_*, check_*, calculate_*), with the same
//   order of checks, the same events in the same order and the same rounding; reading the
//   two side by side is how this file is reviewed. Differential tests compare the events and
//   the state root after every command.
// - Pure and deterministic: no clock, no randomness, no float, no I/O in the transition.
//   (The stream runner used by benchmarks reads a clock around each command, never inside.)
// - Dense state: accounts, positions and orders live in arrays indexed by small integer ids;
//   a price level is an intrusive doubly linked list of order slots; each book side is a
//   vector of levels sorted so that the best price is at the back (bids ascending, asks
//   descending), so the common insert and remove near the top of the book moves little.
//   There is no Python object per order.
// - Integers: prices and sizes are int64 (the market bounds are at most 10^15); every
//   notional, balance and fund is __int128 (price * size <= 10^30; a risk term
//   exposure * mark * fraction <= 10^36). The reference's integers are unbounded: command
//   values beyond these widths are refused loudly (NativeUnsupported) or read as the
//   reference reads them (a size past every bound is refused for being too large). Sums
//   are not checked at every step: a balance leaves __int128 (1.7 * 10^38) only after some
//   10^8 fills at the market bounds in one direction, far past any real venue; the
//   reference has no such limit (docs/engine.md, "The native core").
// - What the core does not implement is refused before the command changes anything
//   (NativeUnsupported): client ids outside 0..2^128, expiries and dead-man times beyond
//   int64, an isolated flag that is not a bool, journal records that are not the encoder's.
//   Every command type is implemented.
// - Replay (``replay_segment``, ``apply_records``) decodes trusted journal records
//   (asyncdex/sequencer/records.py) straight into command structs; a segment's framing,
//   CRC-32 and seqs are checked as the Python reader checks them, and anything unclean is
//   left to that reader.

#include <pybind11/pybind11.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <ctime>
#include <queue>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace py = pybind11;

namespace {

using i64 = int64_t;
using i128 = __int128;

constexpr i64 PPM = 1000000;
constexpr i64 PPB = 1000000000;
constexpr i64 MAX_COLLATERAL = 1000000000000000000LL;  // 10^18, asyncdex.types.numeric
constexpr i64 NO_TIME = i64(1) << 62;
constexpr i64 ALL_MARKETS = -1;
constexpr i64 NONCES_KEPT = 100;
constexpr i64 NONCE_PAST_MS = 2 * 86400000LL;
constexpr i64 NONCE_FUTURE_MS = 86400000LL;
constexpr i64 MAX_BUILDER_FEE = 100;
constexpr i64 MAX_BUILDER_APPROVAL = 1000;
constexpr i64 MIN_BUILDER_ACCOUNT_VALUE = 100000000;
constexpr i64 BUILDER_FEE_UNIT = 100000;

// command tags (asyncdex.messages.codec COMMAND_TAG), checked against Python at start-up
enum Tag : int {
    T_DEPOSIT = 0,
    T_WITHDRAW = 1,
    T_PLACE = 2,
    T_CANCEL = 3,
    T_CANCEL_CLIENT = 4,
    T_CANCEL_ALL = 5,
    T_MODIFY = 6,
    T_SCHEDULE = 7,
    T_LEVERAGE = 8,
    T_ISOLATED = 9,
    T_ORACLE = 10,
    T_ADVANCE = 11,
    T_APPROVE_AGENT = 12,
    T_SIGNED = 13,
    T_FORCE_WITHDRAW = 14,
    T_FORCE_CANCEL = 15,
    T_PROTECTIVE = 16,
    T_BATCH = 17,
    T_APPROVE_BUILDER = 18,
    T_BUILDER_ORDER = 19,
    T_COMMITTEE_BLOCK = 20,
    N_TAGS = 21
};

// event classes, in asyncdex.messages.events EVENT_TYPES order
enum Ev : int {
    E_REJECTED = 0,
    E_ACCEPTED,
    E_TRADE,
    E_RESTED,
    E_CANCELLED,
    E_MODIFIED,
    E_TRIGGER_ARMED,
    E_TRIGGERED,
    E_DEPOSITED,
    E_WITHDRAWN,
    E_LEVERAGE_SET,
    E_ISO_MOVED,
    E_SCHEDULED_SET,
    E_ORACLE_ACCEPTED,
    E_MARK_UPDATED,
    E_FUNDING_PAID,
    E_LIQ_STARTED,
    E_LIQ_SETTLED,
    E_DELEVERAGED,
    E_AGENT_APPROVED,
    E_PROTECTIVE_SET,
    E_L1_CONSUMED,
    E_BATCH_ITEM,
    E_BUILDER_APPROVED,
    E_BUILDER_PAID,
    E_AUCTION_CLEARED,
    E_COMMITTEE_FEES,
    E_COMMITTEE_REWARD,
    N_EVENTS_USED
};

enum Reject : int {
    UNKNOWN_MARKET = 100,
    INVALID_SIZE = 101,
    INVALID_PRICE = 102,
    PRICE_OFF_TICK = 103,
    SIZE_OFF_LOT = 104,
    BELOW_MIN_VALUE = 105,
    SIZE_TOO_LARGE = 106,
    PRICE_TOO_LARGE = 107,
    INVALID_ORDER_TYPE = 108,
    INVALID_TRIGGER = 109,
    INVALID_LEVERAGE = 110,
    INVALID_AMOUNT = 111,
    ALREADY_EXPIRED = 112,
    UNKNOWN_PUBLISHER = 113,
    INVALID_TIME = 114,
    UNKNOWN_ORDER = 200,
    NOT_ORDER_OWNER = 201,
    INVALID_BUILDER_FEE = 117,
    NOT_SIGNABLE = 115,
    NOT_BATCHABLE = 116,
    DUPLICATE_CLIENT_ID = 202,
    UNKNOWN_CLIENT_ID = 203,
    UNKNOWN_ACCOUNT = 204,
    TOO_MANY_ORDERS = 205,
    NO_MARK_PRICE = 206,
    OUT_OF_ORDER_L1_MESSAGE = 207,
    MODE_CHANGE_WITH_POSITION = 208,
    NOT_ISOLATED = 209,
    BUILDER_NOT_APPROVED = 210,
    BUILDER_FEE_ABOVE_APPROVED = 211,
    BUILDER_BALANCE_TOO_LOW = 212,
    UNKNOWN_AGENT = 250,
    AGENT_EXPIRED = 251,
    AGENT_NOT_ALLOWED = 252,
    AGENT_TAKEN = 253,
    NONCE_ALREADY_USED = 254,
    NONCE_TOO_LOW = 255,
    NONCE_OUT_OF_WINDOW = 256,
    INTENT_EXPIRED = 257,
    INSUFFICIENT_MARGIN = 300,
    REDUCE_ONLY_WOULD_INCREASE = 301,
    INSUFFICIENT_COLLATERAL = 302,
    WITHDRAWALS_PAUSED = 303,
    COLLATERAL_CAP_EXCEEDED = 304,
    POST_ONLY_WOULD_CROSS = 400,
    FOK_NOT_FILLED = 401,
};

enum CancelReason : int {
    C_USER = 1,
    C_IOC_REMAINDER = 2,
    C_SELF_TRADE = 3,
    C_EXPIRED = 4,
    C_REDUCE_ONLY = 5,
    C_SCHEDULED = 7,
};

constexpr int GTC = 0, IOC = 1, FOK = 2, ALO = 3;
constexpr int LIMIT = 0, MARKET = 1;

struct Unsupported : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Python's floor division and its ceiling twin, on __int128
inline i128 floordiv(i128 a, i128 b) {
    i128 q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}
inline i128 ceildiv(i128 a, i128 b) { return -floordiv(-a, b); }
inline i128 abs128(i128 v) { return v < 0 ? -v : v; }
inline i64 abs64(i64 v) { return v < 0 ? -v : v; }

PyObject* to_py(i128 v) {
    if (v >= INT64_MIN && v <= INT64_MAX) return PyLong_FromLongLong((long long)v);
    bool neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    PyObject* hi = PyLong_FromUnsignedLongLong((unsigned long long)(u >> 64));
    PyObject* lo = PyLong_FromUnsignedLongLong((unsigned long long)u);
    PyObject* shift = PyLong_FromLong(64);
    PyObject* shifted = PyNumber_Lshift(hi, shift);
    PyObject* out = PyNumber_Or(shifted, lo);
    Py_DECREF(hi);
    Py_DECREF(lo);
    Py_DECREF(shift);
    Py_DECREF(shifted);
    if (neg) {
        PyObject* n = PyNumber_Negative(out);
        Py_DECREF(out);
        out = n;
    }
    return out;
}

// a stored client id back to its Python int (see decode_client)
PyObject* client_to_py(i128 v) {
    unsigned __int128 u = (unsigned __int128)v;
    PyObject* hi = PyLong_FromUnsignedLongLong((unsigned long long)(u >> 64));
    PyObject* lo = PyLong_FromUnsignedLongLong((unsigned long long)u);
    PyObject* shift = PyLong_FromLong(64);
    PyObject* shifted = PyNumber_Lshift(hi, shift);
    PyObject* out = PyNumber_Or(shifted, lo);
    Py_DECREF(hi);
    Py_DECREF(lo);
    Py_DECREF(shift);
    Py_DECREF(shifted);
    return out;
}

i128 from_py128(PyObject* o) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (!overflow) return v;
    // beyond int64: through the decimal text (only snapshots and exports come here)
    PyObject* text = PyObject_Str(o);
    const char* s = PyUnicode_AsUTF8(text);
    bool neg = *s == '-';
    if (neg) ++s;
    unsigned __int128 acc = 0;
    for (; *s; ++s) {
        unsigned __int128 next = acc * 10 + unsigned(*s - '0');
        if (next / 10 != acc) {
            Py_DECREF(text);
            throw Unsupported("an integer beyond 128 bits");
        }
        acc = next;
    }
    Py_DECREF(text);
    if (acc > (unsigned __int128)(((unsigned __int128)1 << 127) - 1))
        throw Unsupported("an integer beyond 128 bits");
    return neg ? -(i128)acc : (i128)acc;
}

using Key = std::array<uint8_t, 20>;
struct KeyHash {
    size_t operator()(const Key& k) const noexcept {
        uint64_t a, b, c = 0;
        std::memcpy(&a, k.data(), 8);
        std::memcpy(&b, k.data() + 8, 8);
        std::memcpy(&c, k.data() + 16, 4);
        uint64_t h = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL;
        h ^= c * 0x165667B19E3779F9ULL;
        return h ^ (h >> 29);
    }
};

// an account's client id, as the client-id index keys it
struct ClientKey {
    int32_t account;
    i128 client_id;
    bool operator==(const ClientKey& o) const {
        return account == o.account && client_id == o.client_id;
    }
};
struct ClientKeyHash {
    size_t operator()(const ClientKey& k) const noexcept {
        uint64_t lo = (uint64_t)k.client_id, hi = (uint64_t)((unsigned __int128)k.client_id >> 64);
        uint64_t h = lo * 0x9E3779B97F4A7C15ULL ^ hi * 0xC2B2AE3D27D4EB4FULL ^
                     (uint64_t)(uint32_t)k.account * 0x165667B19E3779F9ULL;
        return h ^ (h >> 31);
    }
};

struct MarketSpecN {
    i64 market_id, tick, lot, min_order_value, initial_margin_ppm, maintenance_margin_ppm,
        max_leverage, maker_fee_ppm, taker_fee_ppm, funding_interval_ms, premium_sample_ms,
        funding_cap_ppb, interest_ppb, oracle_staleness_ms, mark_band_ppm, market_slippage_ppm,
        max_order_size, max_price, liquidation_fee_ppm, auction_interval_ms;
};

struct Order {
    i128 client_id;  // 128 bits: a Hyperliquid cloid is one
    i64 order_id, price, size, orig_size, expiry, timestamp, trigger_price;
    int32_t account;
    int32_t builder, builder_fee;  // the builder's account id (-1: none), tenths of a bp
    int32_t prev, next;    // the price level's list
    int32_t pprev, pnext;  // the position's list
    int16_t market;
    uint8_t is_buy, reduce_only, tif, order_type;
    uint8_t trigger_kind;  // 1 stop, 2 take-profit while armed; 0 once fired (or never)
};

struct Level {
    i64 price;
    int32_t head, tail;
};

struct Side {
    std::vector<Level> levels;  // best at the back
    bool bids;
    // position of the level at ``price``, or where it would be inserted
    size_t lower(i64 price) const {
        size_t lo = 0, hi = levels.size();
        while (lo < hi) {
            size_t mid = (lo + hi) >> 1;
            bool before = bids ? levels[mid].price < price : levels[mid].price > price;
            if (before)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo;
    }
    bool empty() const { return levels.empty(); }
    i64 best() const { return levels.back().price; }
};

struct Oracle {
    std::string publisher;
    PyObject* obj;
    i64 price, time;
};

struct Market {
    MarketSpecN spec;
    Side bids{{}, true}, asks{{}, false};
    std::vector<Oracle> oracle;  // insertion order, as the reference's dict
    i64 index_price = 0, mark_price = 0, premium_count = 0, next_sample = 0, next_funding = 0,
        funding_rate_ppb = 0;
    i128 premium_sum = 0, cumulative_funding = 0;
    i64 next_auction = 0;  // batch-auction markets: the next auction's time (0: not yet set)
    std::vector<int32_t> holders;  // accounts with a non-zero position (order is not committed)
    std::vector<int32_t> triggers;  // armed trigger orders' slots, in arming order (committed)
};

struct alignas(64) Position {
    // what the risk sums read first, in one cache line with the list and flags
    i64 size = 0, open_buy = 0, open_sell = 0, imf = 0, leverage = 0;
    bool exists = false, isolated = false;
    int32_t ohead = -1, norders = 0, holder_at = -1;
    i128 entry_notional = 0, iso_margin = 0, cum_funding = 0;
};

struct Account {
    Key key;
    PyObject* address;  // the bytes object events carry
    i128 collateral = 0;
    i64 scheduled_cancel = 0;
    int32_t open_orders = 0;
    std::vector<std::pair<Key, i64>> agents;    // approved agent -> valid until, in order
    std::vector<std::pair<Key, i64>> builders;  // approved builder -> max fee, in order
    // bit m: a position exists in market m (venues of at most 64 markets; with more, the
    // risk loops visit every market): the risk sums touch only the positions held
    uint64_t held_mask = 0;
};

// A decoded command: the int fields as int64 with a bit per field telling whether the
// Python value was an exact int that fits (else the handler treats it as the reference does
// an out-of-range or ill-typed value); ``src`` is the command object when there is one
// (rejections echo its fields, as the reference does).
struct Cmd {
    int tag = -1;
    i64 v[14] = {0};
    uint32_t exact = 0;  // bit i: field i is an exact int (``type(x) is int``; maybe big)
    uint32_t intlike = 0;  // bit i: an int (or a bool or IntEnum, which compare as ints)
    uint32_t overflow = 0;  // bit i: an int beyond int64
    uint32_t truthy = 0;  // bit i: field i is true
    int src_index(int i) const { return builder_layout && i >= 5 ? i + 2 : i; }
    Key key{};
    bool key_ok = false;  // the account (field 0) is a 20-byte bytes
    int32_t account_hint = -1;  // the account's id when the stream was decoded (checked)
    i128 client = 0;  // the client id (PlaceOrder, PlaceBuilderOrder, CancelByClientId)
    bool client_too_big = false;  // beyond 128 bits: refused
    PyObject* src = nullptr;
    // a PlaceBuilderOrder decoded in PlaceOrder's layout: its fields from 5 on sit two
    // further in ``src``; the builder is ``key2``, its fee ``v[12]``
    bool builder_layout = false;
    Key key2{};  // the second address field (agent, builder)
    bool key2_ok = false;
    bool field1_bytes = false;  // field 1 is a bytes (an agent or builder address)
    std::shared_ptr<std::vector<Cmd>> inner;  // Signed: its command; Batch: its commands
    bool is_exact(int i) const { return exact >> i & 1; }
    bool is_true(int i) const { return truthy >> i & 1; }
    bool is_int(int i) const { return (intlike >> i & 1) && !(overflow >> i & 1); }
    bool is_big(int i) const { return overflow >> i & 1; }
};

class Core {
public:
    // ---------------------------------------------------------------- set-up
    std::vector<Market> markets;
    std::vector<std::string> publishers;
    i64 max_open_orders = 0;
    std::vector<Account> accounts;
    std::unordered_map<Key, int32_t, KeyHash> account_ids;
    std::vector<Position> positions;  // accounts.size() * markets.size(), dense
    std::vector<Order> orders;
    std::vector<int32_t> free_slots;
    std::vector<int32_t> id_slot;  // order id -> slot, -1 when not live
    std::unordered_map<ClientKey, i64, ClientKeyHash> client_ids;  // -> the open order's id
    std::priority_queue<std::pair<i64, i64>, std::vector<std::pair<i64, i64>>,
                        std::greater<std::pair<i64, i64>>>
        expiries;
    // dead-man switches: (time, account address), ties in address order as the reference's heap
    std::priority_queue<std::pair<i64, Key>, std::vector<std::pair<i64, Key>>,
                        std::greater<std::pair<i64, Key>>>
        scheduled;
    i64 time = 0, next_due = 0, next_order_id = 1, next_withdrawal_id = 1, l1_consumed = 0;
    i128 insurance_fund = 0, fee_pool = 0, total_deposited = 0, total_withdrawn = 0;
    bool protective = false;
    bool protocol_taker = false;  // the taker matching now is a liquidation's (no fee)
    i64 protocol_order = 0;  // the liquidation order of the auction running now (no fee)
    // committee incentives (engine/incentives.py), untouched while the share is 0
    i64 committee_share_ppm = 0;
    std::vector<Key> committee_members;
    std::vector<PyObject*> committee_addresses;
    i128 committee_pool = 0, committee_fee_mark = 0;
    i64 committee_proposer = -1;
    std::unordered_map<std::string, std::vector<i64>> nonces;  // signer -> highest, ascending
    std::vector<std::string> nonce_order;  // signers in first-use order (the reference's dict)
    std::unordered_map<Key, int32_t, KeyHash> agent_master;  // agent -> the account it signs for
    // the markets' mark prices and maintenance fractions, packed: the risk sums read them
    // for every position, and a Market is several cache lines
    std::vector<i64> marks, maint_ppm, liquidation_fee_ppm;
    int32_t live_orders = 0;

    PyObject* event_types[N_EVENTS_USED] = {nullptr};
    PyObject* command_types[N_TAGS] = {nullptr};
    PyObject* py_true = Py_True;
    PyObject* py_false = Py_False;
    PyObject* small[8] = {nullptr};

    // events: Python objects (``apply``) or a count (``run_stream``)
    PyObject* out = nullptr;
    i64 event_count = 0;

    Core(py::list market_specs, py::list publisher_list, i64 max_open, py::tuple events,
         py::tuple commands) {
        for (py::handle s : market_specs) {
            py::tuple t = py::reinterpret_borrow<py::tuple>(s);
            Market m;
            i64* f = &m.spec.market_id;
            if (t.size() != 20) throw std::invalid_argument("a market spec has 20 fields");
            for (size_t i = 0; i < 20; ++i) f[i] = t[i].cast<i64>();
            markets.push_back(std::move(m));
        }
        for (const Market& m : markets) {
            marks.push_back(0);
            maint_ppm.push_back(m.spec.maintenance_margin_ppm);
            liquidation_fee_ppm.push_back(m.spec.liquidation_fee_ppm);
        }
        for (py::handle p : publisher_list) publishers.push_back(p.cast<std::string>());
        max_open_orders = max_open;
        if (events.size() < N_EVENTS_USED || commands.size() != N_TAGS)
            throw std::invalid_argument("event or command types out of step with the codec");
        for (int i = 0; i < N_EVENTS_USED; ++i) {
            event_types[i] = events[i].ptr();
            Py_INCREF(event_types[i]);
        }
        for (int i = 0; i < N_TAGS; ++i) {
            command_types[i] = commands[i].ptr();
            Py_INCREF(command_types[i]);
        }
        for (int i = 0; i < 8; ++i) small[i] = PyLong_FromLong(i - 1);
    }

    // ---------------------------------------------------------------- events

    PyObject* obj(i64 v) {
        if (v >= -1 && v < 7) {
            PyObject* o = small[v + 1];
            Py_INCREF(o);
            return o;
        }
        return PyLong_FromLongLong(v);
    }
    PyObject* obj128(i128 v) { return to_py(v); }
    PyObject* objb(bool b) {
        PyObject* o = b ? Py_True : Py_False;
        Py_INCREF(o);
        return o;
    }
    PyObject* objo(PyObject* o) {
        Py_INCREF(o);
        return o;
    }

    // one event from new references (stolen)
    template <typename... Items>
    void emit(int kind, Items... items) {
        if (!out) {
            ++event_count;
            return;
        }
        PyObject* values[] = {items()...};
        constexpr size_t n = sizeof...(Items);
        PyTypeObject* type = (PyTypeObject*)event_types[kind];
        // as tuple.__new__(cls, values) does for a tuple subclass (a NamedTuple)
        PyObject* ev = type->tp_alloc(type, (Py_ssize_t)n);
        if (!ev) throw py::error_already_set();
        for (size_t i = 0; i < n; ++i) PyTuple_SET_ITEM(ev, i, values[i]);
        PyList_Append(out, ev);
        Py_DECREF(ev);
    }

    // the command's field ``field`` as the reference echoes it, else ``value``
    PyObject* echo(const Cmd& c, int field, i64 value) {
        if (field >= 0 && c.src) return objo(PyTuple_GET_ITEM(c.src, c.src_index(field)));
        return obj(value);
    }
    PyObject* account_obj(const Cmd& c) {
        if (c.src) return objo(PyTuple_GET_ITEM(c.src, 0));
        return PyBytes_FromStringAndSize((const char*)c.key.data(), 20);
    }

    void reject(const Cmd& c, int tag, int mfield, i64 market, int rfield, i64 ref, int reason) {
        if (!out) {
            ++event_count;
            return;
        }
        emit(E_REJECTED, [&] { return account_obj(c); }, [&] { return obj(tag); },
             [&] { return echo(c, mfield, market); }, [&] { return echo(c, rfield, ref); },
             [&] { return obj(reason); });
    }

    PyObject* addr(int32_t account) { return objo(accounts[account].address); }

    void emit_cancelled(const Order& o, int reason) {
        emit(E_CANCELLED, [&] { return obj(o.order_id); }, [&] { return addr(o.account); },
             [&] { return obj(o.market); }, [&] { return obj(o.size); },
             [&] { return obj(reason); });
    }

    // ---------------------------------------------------------------- lookups

    int32_t find_account(const Cmd& c) const {
        if (!c.key_ok) return -1;
        int32_t hint = c.account_hint;
        if (hint >= 0 && (size_t)hint < accounts.size() && accounts[hint].key == c.key) return hint;
        auto it = account_ids.find(c.key);
        return it == account_ids.end() ? -1 : it->second;
    }

    int32_t create_account(const Key& key, PyObject* address) {
        int32_t id = (int32_t)accounts.size();
        Account a;
        a.key = key;
        a.address = address;
        Py_INCREF(address);
        accounts.push_back(a);
        account_ids.emplace(key, id);
        size_t M = markets.size();
        positions.resize(accounts.size() * M);
        for (size_t m = 0; m < M; ++m) reset_position(positions[id * M + m], markets[m]);
        return id;
    }

    void reset_position(Position& p, const Market& m) {
        p = Position();
        p.leverage = m.spec.max_leverage;
        p.imf = initial_fraction(m.spec.initial_margin_ppm, m.spec.max_leverage);
    }

    static i64 initial_fraction(i64 market_ppm, i64 leverage) {
        i64 by_leverage = (PPM + leverage - 1) / leverage;
        return by_leverage > market_ppm ? by_leverage : market_ppm;
    }

    Position& pos(int32_t account, size_t market) {
        return positions[(size_t)account * markets.size() + market];
    }

    Order* live_order(i64 order_id) {
        if (order_id <= 0 || order_id >= (i64)id_slot.size()) return nullptr;
        int32_t slot = id_slot[order_id];
        return slot < 0 ? nullptr : &orders[slot];
    }

    static ClientKey client_key(int32_t account, i128 client_id) { return {account, client_id}; }
    // client ids are kept per (account, client id); a collision of two keys is checked
    i64 find_client(int32_t account, i128 client_id) {
        auto it = client_ids.find(client_key(account, client_id));
        if (it == client_ids.end()) return 0;
        // the index only ever holds open orders: anything else is a bug, said loudly
        Order* o = live_order(it->second);
        if (!o || o->account != account || o->client_id != client_id)
            throw std::logic_error("client id index out of step with the orders");
        return it->second;
    }

    // ---------------------------------------------------------------- positions

    void maybe_drop_position(int32_t account, size_t market, Position& p) {
        if (p.size == 0 && p.norders == 0 && p.iso_margin == 0 && !p.isolated &&
            p.leverage == markets[market].spec.max_leverage)
            set_exists(account, market, p, false);
    }

    void set_exists(int32_t account, size_t market, Position& p, bool exists) {
        p.exists = exists;
        if (market < 64) {
            uint64_t bit = uint64_t(1) << market;
            if (exists)
                accounts[account].held_mask |= bit;
            else
                accounts[account].held_mask &= ~bit;
        }
    }

    // (equity, initial, maintenance) of the cross account; ``changed`` names the market
    // whose resting totals are taken as ``ob``/``os`` instead
    void cross_risk(int32_t account, i128& equity, i128& initial, i128& maintenance,
                    int changed = -1, i64 ob = 0, i64 os = 0) {
        const Account& a = accounts[account];
        equity = a.collateral;
        i128 init = 0, maint = 0;
        size_t M = markets.size();
        const Position* ps = &positions[(size_t)account * M];
        auto add = [&](size_t m) {
            const Position& p = ps[m];
            i64 mark = marks[m];
            i64 size = p.size;
            i128 long_case, short_case;
            if ((int)m == changed) {
                long_case = (i128)size + ob;
                short_case = (i128)os - size;
            } else {
                long_case = (i128)size + p.open_buy;
                short_case = (i128)p.open_sell - size;
            }
            if (long_case < 0) long_case = -long_case;
            if (short_case < 0) short_case = -short_case;
            i128 exposure = long_case > short_case ? long_case : short_case;
            i128 held = size >= 0 ? size : -(i128)size;
            if (p.isolated) {
                init += (exposure - held) * mark * p.imf;
                return;
            }
            equity += (i128)size * mark;
            init += exposure * mark * p.imf;
            maint += held * mark * maint_ppm[m];
        };
        if (M <= 64) {
            for (uint64_t mask = a.held_mask; mask; mask &= mask - 1)
                add((size_t)__builtin_ctzll(mask));
        } else {
            for (size_t m = 0; m < M; ++m)
                if (ps[m].exists) add(m);
        }
        initial = ceildiv(init, PPM);
        maintenance = ceildiv(maint, PPM);
    }

    void isolated_risk(size_t market, const Position& p, i128& equity, i128& initial,
                       i128& maintenance) {
        i64 mark = markets[market].mark_price;
        i128 size = abs64(p.size);
        equity = p.iso_margin + (i128)p.size * mark;
        initial = ceildiv(size * mark * p.imf, PPM);
        maintenance = ceildiv(size * mark * markets[market].spec.maintenance_margin_ppm, PPM);
    }

    static i128 worst_exposure(i128 size, i128 ob, i128 os) {
        i128 l = size + ob, s = os - size;
        if (l < 0) l = -l;
        if (s < 0) s = -s;
        return l > s ? l : s;
    }

    static i128 builder_fee_charged(i128 notional, i64 fee) {
        return ceildiv(notional * fee, BUILDER_FEE_UNIT);
    }

    const i64* find_builder(int32_t account, const Key& builder) const {
        for (const auto& item : accounts[account].builders)
            if (item.first == builder) return &item.second;
        return nullptr;
    }

    static i128 fee_charged(i128 notional, i64 fee_ppm) {
        if (fee_ppm >= 0) return ceildiv(notional * fee_ppm, PPM);
        return -floordiv(notional * -fee_ppm, PPM);
    }

    // ---------------------------------------------------------------- book

    Side& side_of(Market& m, bool is_buy) { return is_buy ? m.bids : m.asks; }

    int32_t alloc_order(const Order& o) {
        int32_t slot;
        if (!free_slots.empty()) {
            slot = free_slots.back();
            free_slots.pop_back();
            orders[slot] = o;
        } else {
            slot = (int32_t)orders.size();
            orders.push_back(o);
        }
        if (o.order_id >= (i64)id_slot.size()) {
            size_t want = std::max<size_t>(id_slot.size() * 2, (size_t)o.order_id + 1);
            id_slot.resize(want, -1);
        }
        id_slot[o.order_id] = slot;
        return slot;
    }

    void free_order(int32_t slot) {
        id_slot[orders[slot].order_id] = -1;
        free_slots.push_back(slot);
    }

    void book_add(Market& m, int32_t slot) {
        Order& o = orders[slot];
        Side& s = side_of(m, o.is_buy);
        size_t at = s.lower(o.price);
        o.next = -1;
        if (at < s.levels.size() && s.levels[at].price == o.price) {
            Level& l = s.levels[at];
            o.prev = l.tail;
            orders[l.tail].next = slot;
            l.tail = slot;
        } else {
            o.prev = -1;
            s.levels.insert(s.levels.begin() + at, Level{o.price, slot, slot});
        }
    }

    void book_remove(Market& m, int32_t slot) {
        Order& o = orders[slot];
        Side& s = side_of(m, o.is_buy);
        if (o.prev >= 0 && o.next >= 0) {
            orders[o.prev].next = o.next;
            orders[o.next].prev = o.prev;
            return;
        }
        size_t at;
        if (!s.levels.empty() && s.levels.back().price == o.price)
            at = s.levels.size() - 1;
        else
            at = s.lower(o.price);
        Level& l = s.levels[at];
        if (o.prev >= 0)
            orders[o.prev].next = o.next;
        else
            l.head = o.next;
        if (o.next >= 0)
            orders[o.next].prev = o.prev;
        else
            l.tail = o.prev;
        if (l.head < 0) s.levels.erase(s.levels.begin() + at);
    }

    void position_link(Position& p, int32_t slot) {
        Order& o = orders[slot];
        o.pprev = -1;
        o.pnext = p.ohead;
        if (p.ohead >= 0) orders[p.ohead].pprev = slot;
        p.ohead = slot;
        ++p.norders;
    }
    void position_unlink(Position& p, int32_t slot) {
        Order& o = orders[slot];
        if (o.pprev >= 0)
            orders[o.pprev].pnext = o.pnext;
        else
            p.ohead = o.pnext;
        if (o.pnext >= 0) orders[o.pnext].pprev = o.pprev;
        --p.norders;
    }

    // ---------------------------------------------------------------- apply

    void apply(const Cmd& c, i64 timestamp) {
        check_supported(c);
        if (timestamp > time) time = timestamp;
        if (time >= next_due) process_due();
        dispatch(c, time);
    }

    void dispatch(const Cmd& c, i64 time) {
        switch (c.tag) {
            case T_PLACE: process_place_order(c, time); break;
            case T_CANCEL: process_cancel_order(c); break;
            case T_CANCEL_CLIENT: process_cancel_by_client_id(c); break;
            case T_CANCEL_ALL: process_cancel_all(c); break;
            case T_MODIFY: process_modify_order(c, time); break;
            case T_DEPOSIT: process_deposit(c); break;
            case T_WITHDRAW: process_withdraw(c); break;
            case T_LEVERAGE: process_set_leverage(c); break;
            case T_ISOLATED: process_update_isolated_margin(c); break;
            case T_SCHEDULE: process_schedule_cancel(c, time); break;
            case T_FORCE_WITHDRAW: process_force_withdraw(c); break;
            case T_FORCE_CANCEL: process_force_cancel_all(c); break;
            case T_ORACLE: process_oracle_price(c, time); break;
            case T_ADVANCE: process_refresh_prices_all(time); break;
            case T_COMMITTEE_BLOCK:
                if (committee_share_ppm) process_committee_rewards(c);
                // a block's start is a time tick at the block's timestamp, like AdvanceTime
                process_refresh_prices_all(time);
                break;
            case T_PROTECTIVE: process_set_protective_mode(c); break;
            case T_SIGNED: process_signed(c, time); break;
            case T_BATCH: process_batch(c, time); break;
            case T_APPROVE_AGENT: process_approve_agent(c, time); break;
            case T_APPROVE_BUILDER: process_approve_builder_fee(c); break;
            case T_BUILDER_ORDER: process_place_builder_order(c, time); break;
            default: throw Unsupported("command not implemented by the native core");
        }
    }

    // refuses, before anything changes, what the core does not implement
    void check_supported(const Cmd& c) {
        switch (c.tag) {
            case T_PLACE:
            case T_BUILDER_ORDER:
                if (c.client_too_big || c.is_big(9) || (c.is_true(8) && !(c.intlike >> 8 & 1)))
                    throw Unsupported("a client id beyond 128 bits or an expiry beyond int64");
                return;
            case T_SIGNED:
                if (c.src ? !PyBytes_Check(PyTuple_GET_ITEM(c.src, 0)) : !c.key_ok)
                    throw Unsupported("a signer that is not bytes");
                if (c.inner && !c.inner->empty()) check_supported((*c.inner)[0]);
                return;
            case T_BATCH:
                if (c.inner)
                    for (const Cmd& item : *c.inner)
                        if (batchable(item.tag)) check_supported(item);
                return;
            case T_APPROVE_AGENT:
            case T_APPROVE_BUILDER:
                if (!c.field1_bytes) throw Unsupported("an agent or builder that is not bytes");
                return;
            case T_CANCEL_CLIENT:
                if (c.client_too_big) throw Unsupported("a client id beyond 128 bits");
                return;
            case T_SCHEDULE:
                if (c.is_big(1)) throw Unsupported("a time beyond int64");
                return;
            case T_DEPOSIT:
                if (c.src && !PyBytes_Check(PyTuple_GET_ITEM(c.src, 0)))
                    throw Unsupported("a deposit to an account that is not bytes");
                return;
            case T_LEVERAGE:
                // the position keeps ``isolated`` as given: only a bool is the same value
                if (c.src && !PyBool_Check(PyTuple_GET_ITEM(c.src, 3)))
                    throw Unsupported("an isolated flag that is not a bool");
                return;
            case T_ISOLATED:
            case T_FORCE_WITHDRAW:
            case T_FORCE_CANCEL:
            case T_CANCEL:
            case T_CANCEL_ALL:
            case T_MODIFY:
            case T_WITHDRAW:
            case T_ORACLE:
            case T_ADVANCE:
            case T_COMMITTEE_BLOCK:
            case T_PROTECTIVE:
                return;
            default:
                throw Unsupported("command not implemented by the native core");
        }
    }

    // ---------------------------------------------------------------- orders

    int validate_order_numbers(const Market& m, bool price_ok, i64 price, bool size_ok, i64 size) {
        if (!size_ok || size <= 0) return INVALID_SIZE;
        if (size > m.spec.max_order_size) return SIZE_TOO_LARGE;
        if (size % m.spec.lot) return SIZE_OFF_LOT;
        if (!price_ok || price <= 0) return INVALID_PRICE;
        if (price > m.spec.max_price) return PRICE_TOO_LARGE;
        if (price % m.spec.tick) return PRICE_OFF_TICK;
        return 0;
    }

    i64 market_order_bound(const Market& m, bool is_buy) {
        i64 mark = m.mark_price;
        i64 band = (i64)((i128)mark * m.spec.market_slippage_ppm / PPM);
        i64 tick = m.spec.tick;
        if (is_buy) return (i64)floordiv((i128)mark + band, tick) * tick;
        return (i64)(-floordiv(-((i128)mark - band), tick)) * tick;
    }

    // (filled, notional) an order would take from the book now, others' orders only
    void calculate_sweep(Market& m, int32_t account, bool is_buy, i64 limit, i64 size,
                         i64& filled, i128& notional) {
        Side& s = side_of(m, !is_buy);
        filled = 0;
        notional = 0;
        for (size_t i = s.levels.size(); i-- > 0;) {
            const Level& l = s.levels[i];
            if (is_buy ? l.price > limit : l.price < limit) break;
            for (int32_t slot = l.head; slot >= 0; slot = orders[slot].next) {
                const Order& o = orders[slot];
                if (o.account != account) {
                    i64 take = std::min(o.size, size - filled);
                    filled += take;
                    notional += (i128)take * l.price;
                    if (filled == size) return;
                }
            }
        }
    }

    bool check_order_margin(int32_t account, size_t market, bool is_buy, i64 price, i64 size,
                            bool reduce_only, int tif, i64 released, i64 builder_fee) {
        Market& m = markets[market];
        Position& p = pos(account, market);
        i64 mark = m.mark_price;
        Side& opposite = side_of(m, !is_buy);
        i64 filled = 0;
        i128 notional = 0;
        bool auction = m.spec.auction_interval_ms != 0;
        // a batch auction fills at one price no worse than the limit: the worst case is the
        // whole order filled at its limit, whatever its time in force
        if (!opposite.empty() && !auction) {
            i64 best = opposite.best();
            if (is_buy ? price >= best : price <= best)
                calculate_sweep(m, account, is_buy, price, size, filled, notional);
        }
        if ((tif == IOC || tif == FOK) && !auction) size = filled;
        i64 resting = size - filled;
        i128 cost = fee_charged(notional + (i128)price * resting, m.spec.taker_fee_ppm);
        if (builder_fee) cost += builder_fee_charged(notional + (i128)price * resting, builder_fee);
        i128 loss = is_buy ? notional - (i128)mark * filled : (i128)mark * filled - notional;
        i128 diff = is_buy ? (i128)price - mark : (i128)mark - price;
        if (diff > 0) loss += diff * resting;
        if (loss > 0) cost += loss;
        i64 held = p.size;
        i128 ob = p.open_buy, os = p.open_sell;
        i128 before = worst_exposure(held, ob, os);
        if (!reduce_only) {
            if (is_buy)
                ob += (i128)size - released;
            else
                os += (i128)size - released;
        }
        bool increases = worst_exposure(held, ob, os) > before;
        i128 equity, initial, maintenance;
        cross_risk(account, equity, initial, maintenance, (int)market, (i64)ob, (i64)os);
        if (p.isolated && !increases) {
            i128 iso_equity, iso_initial, iso_maintenance;
            isolated_risk(market, p, iso_equity, iso_initial, iso_maintenance);
            return iso_equity - cost >= iso_maintenance;
        }
        if (increases) return equity - cost >= (protective ? initial * 2 : initial);
        return equity - cost >= maintenance;
    }

    int check_matching(Market& m, int32_t account, bool is_buy, i64 price, i64 size, int tif) {
        Side& s = side_of(m, !is_buy);
        if (tif == ALO) {
            if (!s.empty()) {
                i64 best = s.best();
                if (is_buy ? price >= best : price <= best) return POST_ONLY_WOULD_CROSS;
            }
        } else if (tif == FOK) {
            i128 available = 0;
            for (size_t i = s.levels.size(); i-- > 0;) {
                const Level& l = s.levels[i];
                if (is_buy ? price < l.price : price > l.price) break;
                for (int32_t slot = l.head; slot >= 0; slot = orders[slot].next)
                    if (orders[slot].account != account) available += orders[slot].size;
                if (available >= size) return 0;
            }
            return FOK_NOT_FILLED;
        }
        return 0;
    }

    void process_place_builder_order(const Cmd& c, i64 now) {
        // PlaceBuilderOrder: builder (key2) and fee (v[12], exact bit 12) checked here
        if (!c.key2_ok || !c.is_exact(12) || c.v[12] < 0 || c.v[12] > MAX_BUILDER_FEE)
            return reject(c, T_BUILDER_ORDER, 1, c.v[1], 8, c.v[8], INVALID_BUILDER_FEE);
        process_place_order(c, now, T_BUILDER_ORDER);
    }

    static bool batchable(int tag) {
        switch (tag) {
            case T_PLACE:
            case T_CANCEL:
            case T_CANCEL_CLIENT:
            case T_CANCEL_ALL:
            case T_MODIFY:
            case T_SCHEDULE:
            case T_LEVERAGE:
            case T_ISOLATED:
            case T_BUILDER_ORDER:
                return true;
            default:
                return false;
        }
    }

    void process_place_order(const Cmd& c, i64 now, int tag = T_PLACE) {
        bool with_builder = tag == T_BUILDER_ORDER;
        i64 market_id = c.v[1];
        bool is_buy = c.is_true(2);
        i64 price = c.v[3], size = c.v[4], tif = c.v[5], order_type = c.v[6];
        bool reduce_only = c.is_true(7);
        i128 client_id = c.client;
        i64 expiry = c.v[9], trigger_price = c.v[10];
        bool price_ok = c.is_exact(3), size_ok = c.is_exact(4);
        if (!c.is_exact(1) || market_id < 0 || market_id >= (i64)markets.size())
            return reject(c, tag, 1, market_id, 8, (i64)client_id, UNKNOWN_MARKET);
        Market& m = markets[market_id];
        int reason = 0;
        bool is_market = order_type == MARKET;
        // tif and order type compare as Python ints (``in`` a tuple of ints)
        bool types_ok = c.is_int(5) && c.is_int(6);
        if (!types_ok || (order_type != LIMIT && order_type != MARKET) || tif < GTC || tif > ALO ||
            (is_market && tif == ALO) || (tif == FOK && m.spec.auction_interval_ms)) {
            // fill-or-kill needs an immediate fill: a batch-auction market has none to offer
            reason = INVALID_ORDER_TYPE;
        } else {
            bool use_tick = is_market && price_ok && price == 0;
            reason = validate_order_numbers(m, use_tick || price_ok, use_tick ? m.spec.tick : price,
                                            size_ok, size);
        }
        bool trigger = c.is_true(11);
        if (reason == 0 && trigger) {
            // a trigger order is validated as the reference does; arming one is not implemented
            bool bad_price = validate_order_numbers(m, c.is_exact(10), trigger_price, size_ok,
                                                    size) != 0;
            if (bad_price || !c.is_int(11) || (c.v[11] != 1 && c.v[11] != 2))
                reason = INVALID_TRIGGER;
        } else if (reason == 0 && c.is_true(10)) {
            reason = INVALID_TRIGGER;  // a trigger price without a trigger kind
        }
        if (reason == 0 && c.is_true(9) && (!c.is_int(9) || expiry <= now))
            reason = ALREADY_EXPIRED;
        if (reason) return reject(c, tag, 1, market_id, 8, (i64)client_id, reason);
        int32_t account = find_account(c);
        if (account < 0)
            reason = UNKNOWN_ACCOUNT;
        else if (client_id && find_client(account, client_id))
            reason = DUPLICATE_CLIENT_ID;
        else if (with_builder && !find_builder(account, c.key2))
            reason = BUILDER_NOT_APPROVED;
        else if (with_builder && c.v[12] > *find_builder(account, c.key2))
            reason = BUILDER_FEE_ABOVE_APPROVED;
        else if (m.mark_price == 0)
            reason = NO_MARK_PRICE;
        else if (accounts[account].open_orders >= max_open_orders)
            reason = TOO_MANY_ORDERS;
        if (reason) return reject(c, tag, 1, market_id, 8, (i64)client_id, reason);
        if (is_market) {
            if (tif != FOK) tif = IOC;
            if (!trigger) {
                i64 bound = market_order_bound(m, is_buy);
                if (price == 0 || (is_buy ? price > bound : price < bound)) price = bound;
            }
        }
        Position& p = pos(account, market_id);
        if (reduce_only) {
            i64 held = p.exists ? p.size : 0;
            if (held == 0 || (held > 0) == is_buy)
                return reject(c, tag, 1, market_id, 8, (i64)client_id, REDUCE_ONLY_WOULD_INCREASE);
            size = std::min(size, abs64(held));
        } else if ((i128)(price ? price : trigger_price) * size < m.spec.min_order_value) {
            return reject(c, tag, 1, market_id, 8, (i64)client_id, BELOW_MIN_VALUE);
        }
        bool created = !p.exists;
        if (created) {
            reset_position(p, m);
            set_exists(account, market_id, p, true);
        }
        if (!trigger) {
            reason = check_matching(m, account, is_buy, price, size, (int)tif);
            if (!reason && !check_order_margin(account, market_id, is_buy, price, size,
                                               reduce_only, (int)tif, 0,
                                               with_builder ? c.v[12] : 0))
                reason = INSUFFICIENT_MARGIN;
            if (reason) {
                if (created) set_exists(account, market_id, p, false);
                return reject(c, tag, 1, market_id, 8, (i64)client_id, reason);
            }
        }
        i64 order_id = next_order_id++;
        Order o;
        o.order_id = order_id;
        o.price = price;
        o.size = size;
        o.orig_size = size;
        o.client_id = client_id;
        o.expiry = c.is_true(9) ? expiry : 0;
        o.timestamp = now;
        o.account = account;
        o.market = (int16_t)market_id;
        o.is_buy = is_buy;
        o.reduce_only = reduce_only;
        o.tif = (uint8_t)tif;
        o.order_type = (uint8_t)order_type;
        o.prev = o.next = o.pprev = o.pnext = -1;
        o.trigger_price = trigger_price;
        o.trigger_kind = trigger ? (uint8_t)c.v[11] : 0;
        o.builder = with_builder ? account_ids.at(c.key2) : -1;
        o.builder_fee = with_builder ? (int32_t)c.v[12] : 0;
        emit(E_ACCEPTED, [&] { return obj(order_id); }, [&] { return addr(account); },
             [&] { return obj(market_id); }, [&] { return objb(is_buy); },
             [&] { return obj(price); }, [&] { return obj(size); },
             [&] { return c.src ? echo(c, 8, 0) : client_to_py(client_id); });
        if (trigger)
            process_arm_trigger(account, market_id, o);
        else
            process_execute(account, market_id, o);
    }

    // ---------------------------------------------------------------- triggers

    static bool trigger_fires(const Order& o, i64 mark) {
        bool above = mark >= o.trigger_price, below = mark <= o.trigger_price;
        if (o.trigger_kind == 1) return o.is_buy ? above : below;
        return o.is_buy ? below : above;
    }

    void process_arm_trigger(int32_t account, size_t market, const Order& o) {
        Market& m = markets[market];
        Position& p = pos(account, market);
        int32_t slot = alloc_order(o);
        m.triggers.push_back(slot);
        position_link(p, slot);
        ++accounts[account].open_orders;
        ++live_orders;
        if (o.client_id) client_ids[client_key(account, o.client_id)] = o.order_id;
        if (o.expiry) {
            expiries.emplace(o.expiry, o.order_id);
            next_due = std::min(next_due, o.expiry);
        }
        emit(E_TRIGGER_ARMED, [&] { return obj(o.order_id); },
             [&] { return obj(o.trigger_price); });
        if (trigger_fires(orders[slot], m.mark_price)) process_fire_triggers(market);
    }

    void process_fire_triggers(size_t market) {
        Market& m = markets[market];
        i64 mark = m.mark_price;
        std::vector<int32_t> fired;
        for (int32_t slot : m.triggers)
            if (trigger_fires(orders[slot], mark)) fired.push_back(slot);
        for (int32_t slot : fired) {
            int32_t account = orders[slot].account;
            Position& p = pos(account, market);
            process_take_off(slot);
            Order o = orders[slot];
            free_order(slot);
            emit(E_TRIGGERED, [&] { return obj(o.order_id); }, [&] { return obj(mark); });
            o.trigger_kind = 0;
            if (o.order_type == MARKET) {
                i64 bound = market_order_bound(m, o.is_buy);
                if (o.price == 0 || (o.is_buy ? o.price > bound : o.price < bound)) o.price = bound;
                o.tif = IOC;
            }
            int reason = 0;
            if (o.reduce_only) {
                i64 held = p.size;
                if (held == 0 || (held > 0) == (bool)o.is_buy)
                    reason = C_REDUCE_ONLY;
                else
                    o.size = std::min(o.size, abs64(held));
            }
            if (!reason && !check_order_margin(account, market, o.is_buy, o.price, o.size,
                                               o.reduce_only, o.tif, 0, o.builder_fee))
                reason = 8;  // CancelReason.MARGIN
            if (!reason && o.tif == ALO &&
                check_matching(m, account, o.is_buy, o.price, o.size, o.tif))
                o.tif = GTC;  // a post-only trigger that would cross now takes liquidity
            if (reason) {
                emit_cancelled(o, reason);
                maybe_drop_position(account, market, p);
                continue;
            }
            process_execute(account, market, o);
        }
    }

    void process_execute(int32_t account, size_t market, Order& o) {
        Market& m = markets[market];
        Position& p = pos(account, market);
        if (m.spec.auction_interval_ms) {
            if (!protocol_taker)
                process_queue_for_auction(account, market, o);
            else
                process_liquidation_auction(account, market, o);
            return;
        }
        Side& opposite = side_of(m, !o.is_buy);
        if (!opposite.empty() && (o.is_buy ? o.price >= opposite.best() : o.price <= opposite.best())) {
            process_match(account, market, o);
            // a self-trade cancel may have dropped the (then empty) position: put it back
            set_exists(account, market, p, true);
        }
        if (o.size == 0) {
            maybe_drop_position(account, market, p);
            return;
        }
        if (o.tif == GTC || o.tif == ALO) {
            process_rest(account, market, o);
        } else {
            emit_cancelled(o, C_IOC_REMAINDER);
            maybe_drop_position(account, market, p);
        }
    }

    // ---------------------------------------------------------------- batch auctions

    void process_queue_for_auction(int32_t account, size_t market, Order& o) {
        Position& p = pos(account, market);
        std::vector<std::pair<i64, int32_t>> own;
        for (int32_t slot = p.ohead; slot >= 0; slot = orders[slot].pnext) {
            const Order& r = orders[slot];
            if (r.is_buy != o.is_buy && !r.trigger_kind &&
                (o.is_buy ? r.price <= o.price : r.price >= o.price))
                own.emplace_back(r.order_id, slot);
        }
        std::sort(own.begin(), own.end());
        for (auto& item : own) process_remove_order(item.second, C_SELF_TRADE);
        // a self-trade cancel may have dropped the (then empty) position: put it back
        set_exists(account, market, p, true);
        process_rest(account, market, o);
    }

    void process_liquidation_auction(int32_t account, size_t market, Order& o) {
        process_rest(account, market, o);
        protocol_order = o.order_id;
        bool was = protocol_taker;
        protocol_taker = false;  // the auction's fills name their own fees
        try {
            process_auction(market);
        } catch (...) {
            protocol_order = 0;
            protocol_taker = was;
            throw;
        }
        protocol_order = 0;
        protocol_taker = was;
    }

    // every resting order of a market: bids best first, then asks best first, time order
    std::vector<int32_t> orders_in_priority(const Market& m) {
        std::vector<int32_t> out;
        for (const Side* side : {&m.bids, &m.asks})
            for (size_t i = side->levels.size(); i-- > 0;)
                for (int32_t slot = side->levels[i].head; slot >= 0; slot = orders[slot].next)
                    out.push_back(slot);
        return out;
    }

    struct Clearing {
        i64 price;
        i128 volume, demand, supply;
    };

    static i64 nearest_on_grid(i64 mark, i64 low, i64 high, i64 tick) {
        if (mark <= low) return low;
        if (mark >= high) return high;
        i64 down = (i64)floordiv(mark, tick) * tick;
        if (down == mark) return mark;
        i64 up = down + tick;
        return mark - down <= up - mark ? down : up;
    }

    // auction.calculate_clearing
    static bool calculate_clearing(const std::vector<std::pair<i64, i64>>& bids,
                                   const std::vector<std::pair<i64, i64>>& asks, i64 tick,
                                   i64 mark, Clearing& out) {
        if (bids.empty() || asks.empty()) return false;
        i64 max_bid = INT64_MIN, min_ask = INT64_MAX;
        for (auto& b : bids) max_bid = std::max(max_bid, b.first);
        for (auto& a : asks) min_ask = std::min(min_ask, a.first);
        if (max_bid < min_ask) return false;
        std::map<i64, std::pair<i128, i128>> at;  // price -> (bid size, ask size)
        for (auto& b : bids) at[b.first].first += b.second;
        for (auto& a : asks) at[a.first].second += a.second;
        std::vector<i64> prices;
        std::vector<i128> bid_at, ask_at;
        for (auto& item : at) {
            prices.push_back(item.first);
            bid_at.push_back(item.second.first);
            ask_at.push_back(item.second.second);
        }
        size_t count = prices.size();
        std::vector<i128> demand(count), supply(count);
        i128 running = 0;
        for (size_t i = count; i-- > 0;) {
            running += bid_at[i];
            demand[i] = running;
        }
        running = 0;
        for (size_t i = 0; i < count; ++i) {
            running += ask_at[i];
            supply[i] = running;
        }
        bool have = false;
        i128 best[4] = {0, 0, 0, 0};
        for (size_t i = 0; i < count; ++i) {
            struct Candidate {
                i64 price;
                i128 d, s;
            } candidates[2];
            int n = 0;
            candidates[n++] = {prices[i], demand[i], supply[i]};
            if (i + 1 < count && prices[i + 1] - prices[i] > tick) {
                i64 low = prices[i] + tick, high = prices[i + 1] - tick;
                candidates[n++] = {nearest_on_grid(mark, low, high, tick), demand[i + 1], supply[i]};
            }
            for (int k = 0; k < n; ++k) {
                const Candidate& c = candidates[k];
                i128 volume = std::min(c.d, c.s);
                i128 key[4] = {-volume, abs128(c.d - c.s), abs128((i128)c.price - mark), c.price};
                if (!have || std::lexicographical_compare(key, key + 4, best, best + 4)) {
                    have = true;
                    std::copy(key, key + 4, best);
                    out = Clearing{c.price, volume, c.d, c.s};
                }
            }
        }
        return have && out.volume != 0;
    }

    // auction.allocate_pro_rata
    static std::vector<i64> allocate_pro_rata(const std::vector<i64>& sizes,
                                              const std::vector<Key>& tiebreak, i128 amount,
                                              i64 lot) {
        i128 total = 0;
        for (i64 size : sizes) total += size;
        total /= lot;
        i128 units = amount / lot;
        std::vector<i64> shares;
        struct Remainder {
            i128 neg_rem;
            i64 neg_size;
            Key key;
            size_t index;
            bool operator<(const Remainder& o) const {
                if (neg_rem != o.neg_rem) return neg_rem < o.neg_rem;
                if (neg_size != o.neg_size) return neg_size < o.neg_size;
                if (key != o.key) return key < o.key;
                return index < o.index;
            }
        };
        std::vector<Remainder> remainders;
        i128 given = 0;
        for (size_t i = 0; i < sizes.size(); ++i) {
            i128 scaled = (i128)(sizes[i] / lot) * units;
            i128 share = scaled / total;
            shares.push_back((i64)share);
            given += share;
            remainders.push_back({-(scaled % total), -sizes[i], tiebreak[i], i});
        }
        std::sort(remainders.begin(), remainders.end());
        for (i128 k = 0; k < units - given; ++k) shares[remainders[(size_t)k].index] += 1;
        for (i64& share : shares) share *= lot;
        return shares;
    }

    void process_auction(size_t market) {
        Market& m = markets[market];
        // 1. reduce-only orders within their positions, oldest first
        std::vector<std::pair<i64, int32_t>> pending;
        for (int32_t slot : orders_in_priority(m))
            if (orders[slot].reduce_only) pending.emplace_back(orders[slot].order_id, slot);
        std::sort(pending.begin(), pending.end());
        std::unordered_map<int32_t, i64> budgets;
        for (auto& item : pending) {
            Order& o = orders[item.second];
            i64 held = pos(o.account, market).size;
            auto it = budgets.find(o.account);
            i64 left = it == budgets.end() ? abs64(held) : it->second;
            if (held == 0 || (held > 0) == (bool)o.is_buy || left == 0) {
                process_remove_order(item.second, C_REDUCE_ONLY);
                continue;
            }
            if (o.size > left) {
                o.size = left;
                emit(E_MODIFIED, [&] { return obj(o.order_id); }, [&] { return obj(o.price); },
                     [&] { return obj(left); }, [&] { return objb(true); });
            }
            budgets[o.account] = left - o.size;
        }
        // 2. the clearing price (the reference lists orders level by level, dict order)
        std::vector<std::pair<i64, i64>> bids, asks;
        for (int32_t slot : orders_in_priority(m))
            (orders[slot].is_buy ? bids : asks).emplace_back(orders[slot].price, orders[slot].size);
        Clearing clearing{};
        if (calculate_clearing(bids, asks, m.spec.tick, m.mark_price, clearing)) {
            emit(E_AUCTION_CLEARED, [&] { return obj((i64)market); },
                 [&] { return obj(clearing.price); }, [&] { return obj128(clearing.volume); },
                 [&] { return obj128(clearing.demand); }, [&] { return obj128(clearing.supply); });
            auto buys = calculate_auction_fills(market, true, clearing.price, clearing.volume);
            auto sells = calculate_auction_fills(market, false, clearing.price, clearing.volume);
            process_auction_trades(market, buys, sells, clearing.price);
        }
        // 4. IOC (and market) orders left over
        std::vector<std::pair<i64, int32_t>> leftovers;
        for (int32_t slot : orders_in_priority(m))
            if (orders[slot].tif == IOC) leftovers.emplace_back(orders[slot].order_id, slot);
        std::sort(leftovers.begin(), leftovers.end());
        for (auto& item : leftovers) process_remove_order(item.second, C_IOC_REMAINDER);
    }

    // (slot, size) of one side's fills: whole levels best first, the last shared pro rata
    std::vector<std::pair<int32_t, i64>> calculate_auction_fills(size_t market, bool is_buy,
                                                                 i64 price, i128 volume) {
        Market& m = markets[market];
        Side& side = side_of(m, is_buy);
        std::vector<std::pair<int32_t, i64>> fills;
        i128 left = volume;
        for (size_t i = side.levels.size(); i-- > 0;) {
            const Level& l = side.levels[i];
            if (left == 0 || (is_buy ? l.price < price : l.price > price)) break;
            std::vector<int32_t> level;
            i128 total = 0;
            for (int32_t slot = l.head; slot >= 0; slot = orders[slot].next) {
                level.push_back(slot);
                total += orders[slot].size;
            }
            if (total <= left) {
                for (int32_t slot : level) fills.emplace_back(slot, orders[slot].size);
                left -= total;
                continue;
            }
            std::vector<i64> sizes;
            std::vector<Key> owners;
            for (int32_t slot : level) {
                sizes.push_back(orders[slot].size);
                owners.push_back(accounts[orders[slot].account].key);
            }
            std::vector<i64> shares = allocate_pro_rata(sizes, owners, left, m.spec.lot);
            for (size_t k = 0; k < level.size(); ++k)
                if (shares[k]) fills.emplace_back(level[k], shares[k]);
            left = 0;
        }
        return fills;
    }

    void process_auction_trades(size_t market, std::vector<std::pair<int32_t, i64>> buys,
                                std::vector<std::pair<int32_t, i64>> sells, i64 price) {
        i64 fee_ppm = markets[market].spec.taker_fee_ppm;
        // pairs in (owner, fill size, order id) order: arrival plays no part
        auto by_owner = [&](const std::pair<int32_t, i64>& a, const std::pair<int32_t, i64>& b) {
            const Order& x = orders[a.first];
            const Order& y = orders[b.first];
            const Key& kx = accounts[x.account].key;
            const Key& ky = accounts[y.account].key;
            if (kx != ky) return kx < ky;
            if (a.second != b.second) return a.second < b.second;
            return x.order_id < y.order_id;
        };
        std::sort(buys.begin(), buys.end(), by_owner);
        std::sort(sells.begin(), sells.end(), by_owner);
        std::vector<i64> buy_left, sell_left;
        for (auto& f : buys) buy_left.push_back(f.second);
        for (auto& f : sells) sell_left.push_back(f.second);
        size_t i = 0, j = 0;
        while (i < buys.size() && j < sells.size()) {
            int32_t buy = buys[i].first, sell = sells[j].first;
            i64 quantity = std::min(buy_left[i], sell_left[j]);
            bool buy_older = orders[buy].order_id < orders[sell].order_id;
            int32_t maker = buy_older ? buy : sell, taker = buy_older ? sell : buy;
            i64 maker_ppm = orders[maker].order_id == protocol_order ? 0 : fee_ppm;
            i64 taker_ppm = orders[taker].order_id == protocol_order ? 0 : fee_ppm;
            int32_t maker_account = orders[maker].account, taker_account = orders[taker].account;
            Order& t = orders[taker];
            if (!t.reduce_only) {
                // both sides rest in the book: the taker's open total shrinks too
                Position& tp = pos(taker_account, market);
                if (t.is_buy)
                    tp.open_buy -= quantity;
                else
                    tp.open_sell -= quantity;
            }
            process_fill(market, maker_account, maker, taker_account, t, quantity, price,
                         maker_ppm, taker_ppm, true);
            buy_left[i] -= quantity;
            sell_left[j] -= quantity;
            for (int32_t slot : {maker, taker})
                if (orders[slot].size == 0) process_retire_order(slot);
            if (buy_left[i] == 0) ++i;
            if (sell_left[j] == 0) ++j;
        }
    }

    void process_rest(int32_t account, size_t market, const Order& o) {
        Market& m = markets[market];
        Position& p = pos(account, market);
        if (o.reduce_only) {
            i64 held = p.size;
            if (held == 0 || (held > 0) == (bool)o.is_buy) {
                emit_cancelled(o, C_REDUCE_ONLY);
                maybe_drop_position(account, market, p);
                return;
            }
        } else if (o.is_buy) {
            p.open_buy += o.size;
        } else {
            p.open_sell += o.size;
        }
        int32_t slot = alloc_order(o);
        book_add(m, slot);
        position_link(p, slot);
        ++accounts[account].open_orders;
        ++live_orders;
        if (o.client_id) client_ids[client_key(account, o.client_id)] = o.order_id;
        if (o.expiry) {
            expiries.emplace(o.expiry, o.order_id);
            if (o.expiry < next_due) next_due = o.expiry;
        }
        const Order& r = orders[slot];
        emit(E_RESTED, [&] { return obj(r.order_id); }, [&] { return obj(r.price); },
             [&] { return obj(r.size); });
    }

    void process_match(int32_t taker_account, size_t market, Order& taker) {
        Market& m = markets[market];
        bool is_buy = taker.is_buy;
        Side& s = side_of(m, !is_buy);
        i64 limit = taker.price;
        while (taker.size && !s.empty()) {
            i64 best = s.best();
            if (is_buy ? best > limit : best < limit) break;
            while (taker.size && !s.empty() && s.levels.back().price == best) {
                int32_t slot = s.levels.back().head;
                Order& maker = orders[slot];
                if (maker.account == taker_account) {
                    process_remove_order(slot, C_SELF_TRADE);
                    continue;
                }
                i64 quantity = taker.size < maker.size ? taker.size : maker.size;
                int32_t maker_account = maker.account;
                if (maker.reduce_only) {
                    i64 held = pos(maker_account, market).size;
                    if (held == 0 || (held > 0) == (bool)maker.is_buy) {
                        process_remove_order(slot, C_REDUCE_ONLY);
                        continue;
                    }
                    if (abs64(held) < quantity) quantity = abs64(held);
                }
                process_fill(market, maker_account, slot, taker_account, taker, quantity, best);
                if (orders[slot].size == 0) {
                    process_retire_order(slot);
                } else if (orders[slot].reduce_only) {
                    i64 held = pos(maker_account, market).size;
                    if (held == 0 || (held > 0) == (bool)orders[slot].is_buy)
                        process_remove_order(slot, C_REDUCE_ONLY);
                }
            }
        }
    }

    // ``maker_ppm``/``taker_ppm``: the fee rates (-1: the market's); ``protocol``: the taker is
    // a liquidation's order, which pays no fee, so nothing funds a maker rebate either
    void process_fill(size_t market, int32_t maker_account, int32_t maker_slot,
                      int32_t taker_account, Order& taker, i64 quantity, i64 price,
                      i64 maker_ppm = -1, i64 taker_ppm = -1, bool protocol = false) {
        Market& m = markets[market];
        Order& maker = orders[maker_slot];
        i128 notional = (i128)price * quantity;
        i128 maker_fee = fee_charged(notional, maker_ppm < 0 ? m.spec.maker_fee_ppm : maker_ppm);
        i128 taker_fee = 0;
        if (protocol_taker || protocol) {
            if (maker_fee < 0) maker_fee = 0;
        }
        if (!protocol_taker)
            taker_fee = fee_charged(notional, taker_ppm < 0 ? m.spec.taker_fee_ppm : taker_ppm);
        i128 maker_builder_fee = maker.builder >= 0 ? builder_fee_charged(notional, maker.builder_fee) : 0;
        i128 taker_builder_fee = taker.builder >= 0 ? builder_fee_charged(notional, taker.builder_fee) : 0;
        Position& mp = pos(maker_account, market);
        if (!maker.reduce_only) {
            if (maker.is_buy)
                mp.open_buy -= quantity;
            else
                mp.open_sell -= quantity;
        }
        process_trade(maker_account, market, maker.is_buy, quantity, price,
                      maker_fee + maker_builder_fee);
        process_trade(taker_account, market, taker.is_buy, quantity, price,
                      taker_fee + taker_builder_fee);
        fee_pool += maker_fee + taker_fee;
        maker.size -= quantity;
        taker.size -= quantity;
        emit(E_TRADE, [&] { return obj((i64)m.spec.market_id); }, [&] { return obj(price); },
             [&] { return obj(quantity); }, [&] { return objb(taker.is_buy); },
             [&] { return obj(maker.order_id); }, [&] { return obj(taker.order_id); },
             [&] { return addr(maker_account); }, [&] { return addr(taker_account); },
             [&] { return obj128(maker_fee); }, [&] { return obj128(taker_fee); });
        if (maker_builder_fee) process_pay_builder(market, maker, maker_builder_fee);
        if (taker_builder_fee) process_pay_builder(market, taker, taker_builder_fee);
    }

    void process_pay_builder(size_t market, const Order& o, i128 amount) {
        accounts[o.builder].collateral += amount;
        emit(E_BUILDER_PAID, [&] { return obj((i64)market); }, [&] { return obj(o.order_id); },
             [&] { return addr(o.account); }, [&] { return addr(o.builder); },
             [&] { return obj128(amount); });
    }

    void process_trade(int32_t account, size_t market, bool is_buy, i64 quantity, i64 price,
                       i128 fee) {
        Market& m = markets[market];
        Position& p = pos(account, market);
        i64 old = p.size;
        i64 delta = is_buy ? quantity : -quantity;
        i64 now_size = old + delta;
        i128 flow = -(i128)price * delta - fee;
        if (p.isolated) {
            p.iso_margin += flow;
            i64 added = abs64(now_size) - abs64(old);
            if (added > 0) {
                // the isolated position takes its initial margin from the cross balance
                i128 moved = ceildiv((i128)price * added * p.imf, PPM);
                accounts[account].collateral -= moved;
                p.iso_margin += moved;
            }
        } else {
            accounts[account].collateral += flow;
        }
        if (old == 0 || (old > 0) == (delta > 0))
            p.entry_notional += (i128)price * delta;
        else if (abs64(delta) <= abs64(old))
            p.entry_notional = now_size ? floordiv(p.entry_notional * now_size, old) : 0;
        else
            p.entry_notional = (i128)price * now_size;
        p.size = now_size;
        if (now_size == 0) {
            remove_holder(m, p);
            p.cum_funding = 0;
            if (p.isolated && p.iso_margin >= 0) {
                // a flat isolated position hands its margin back; a negative one (only a
                // liquidation can leave it) stays for the insurance fund to cover
                accounts[account].collateral += p.iso_margin;
                p.iso_margin = 0;
            }
        } else if (old == 0) {
            p.holder_at = (int32_t)m.holders.size();
            m.holders.push_back(account);
        }
    }

    void remove_holder(Market& m, Position& p) {
        int32_t at = p.holder_at;
        int32_t last = m.holders.back();
        m.holders[at] = last;
        m.holders.pop_back();
        size_t market = &m - markets.data();
        pos(last, market).holder_at = at;
        p.holder_at = -1;
    }

    // take a live order off its book and out of every index (the slot stays allocated)
    void process_take_off(int32_t slot) {
        Order& o = orders[slot];
        Market& m = markets[o.market];
        Position& p = pos(o.account, o.market);
        if (o.trigger_kind) {
            m.triggers.erase(std::find(m.triggers.begin(), m.triggers.end(), slot));
        } else {
            book_remove(m, slot);
            if (!o.reduce_only) {
                if (o.is_buy)
                    p.open_buy -= o.size;
                else
                    p.open_sell -= o.size;
            }
        }
        position_unlink(p, slot);
        --accounts[o.account].open_orders;
        --live_orders;
        if (o.client_id) client_ids.erase(client_key(o.account, o.client_id));
    }

    void process_retire_order(int32_t slot) {
        int32_t account = orders[slot].account;
        size_t market = orders[slot].market;
        process_take_off(slot);
        free_order(slot);
        maybe_drop_position(account, market, pos(account, market));
    }

    void process_remove_order(int32_t slot, int reason) {
        int32_t account = orders[slot].account;
        size_t market = orders[slot].market;
        process_take_off(slot);
        emit_cancelled(orders[slot], reason);
        free_order(slot);
        maybe_drop_position(account, market, pos(account, market));
    }

    // the live order ``order_id`` of ``market`` owned by the command's account, else a reject
    int32_t owned_order(const Cmd& c, int tag, int32_t account) {
        Order* o = live_order(c.is_int(2) ? c.v[2] : -1);
        if (!o || !c.is_int(1) || o->market != c.v[1]) {
            reject(c, tag, 1, c.v[1], 2, c.v[2], UNKNOWN_ORDER);
            return -1;
        }
        if (o->account != account) {
            reject(c, tag, 1, c.v[1], 2, c.v[2], NOT_ORDER_OWNER);
            return -1;
        }
        return id_slot[o->order_id];
    }

    void process_cancel_order(const Cmd& c) {
        int32_t slot = owned_order(c, T_CANCEL, find_account(c));
        if (slot >= 0) process_remove_order(slot, C_USER);
    }

    void process_cancel_by_client_id(const Cmd& c) {
        int32_t account = find_account(c);
        i64 order_id = 0;
        if (account >= 0 && c.is_true(2) && (c.intlike >> 2 & 1)) order_id = find_client(account, c.client);
        Order* o = order_id ? live_order(order_id) : nullptr;
        if (!o || !c.is_int(1) || o->market != c.v[1])
            return reject(c, T_CANCEL_CLIENT, 1, c.v[1], 2, c.v[2], UNKNOWN_CLIENT_ID);
        process_remove_order(id_slot[order_id], C_USER);
    }

    void process_cancel_all(const Cmd& c) {
        i64 market = c.v[1];
        bool all = c.is_int(1) && market == ALL_MARKETS;
        if (!all && (!c.is_exact(1) || market < 0 || market >= (i64)markets.size()))
            return reject(c, T_CANCEL_ALL, 1, market, -1, 0, UNKNOWN_MARKET);
        int32_t account = find_account(c);
        if (account < 0) return reject(c, T_CANCEL_ALL, 1, market, -1, 0, UNKNOWN_ACCOUNT);
        process_cancel_account_orders(account, all ? ALL_MARKETS : market, C_USER);
    }

    void process_cancel_account_orders(int32_t account, i64 market, int reason) {
        std::vector<std::pair<i64, int32_t>> ids;
        for (size_t m = 0; m < markets.size(); ++m) {
            if (market != ALL_MARKETS && market != (i64)m) continue;
            Position& p = pos(account, m);
            if (!p.exists) continue;
            ids.clear();
            for (int32_t slot = p.ohead; slot >= 0; slot = orders[slot].pnext)
                ids.emplace_back(orders[slot].order_id, slot);
            std::sort(ids.begin(), ids.end());
            for (auto& item : ids) process_remove_order(item.second, reason);
        }
    }

    void process_modify_order(const Cmd& c, i64 now) {
        const int tag = T_MODIFY;
        i64 market_id = c.v[1], order_id = c.v[2], price = c.v[3], size = c.v[4];
        Order* o = live_order(c.is_int(2) ? order_id : -1);
        int reason = 0;
        int32_t account = find_account(c);
        if (!o || !c.is_int(1) || o->market != market_id) {
            bool unknown_market =
                !c.is_exact(1) || market_id < 0 || market_id >= (i64)markets.size();
            reason = unknown_market ? UNKNOWN_MARKET : UNKNOWN_ORDER;
        } else if (o->account != account) {
            reason = NOT_ORDER_OWNER;
        } else {
            reason = validate_order_numbers(markets[market_id], c.is_exact(3), price, c.is_exact(4),
                                            size);
            if (!reason && !o->reduce_only &&
                (i128)price * size < markets[market_id].spec.min_order_value)
                reason = BELOW_MIN_VALUE;
        }
        if (reason) return reject(c, tag, 1, market_id, 2, order_id, reason);
        Market& m = markets[market_id];
        Position& p = pos(account, market_id);
        int32_t slot = id_slot[order_id];
        bool armed = o->trigger_kind != 0;
        if (armed || (price == o->price && size <= o->size)) {
            // shrinking in place keeps time priority; an armed trigger has no priority yet
            if (!armed && !o->reduce_only) {
                if (o->is_buy)
                    p.open_buy -= o->size - size;
                else
                    p.open_sell -= o->size - size;
            }
            o->price = price;
            o->size = size;
            emit(E_MODIFIED, [&] { return obj(order_id); }, [&] { return obj(price); },
                 [&] { return obj(size); }, [&] { return objb(!armed); });
            return;
        }
        if (o->tif == ALO || o->tif == FOK)
            reason = check_matching(m, account, o->is_buy, price, size, o->tif);
        if (!reason && !check_order_margin(account, market_id, o->is_buy, price, size,
                                           o->reduce_only, o->tif, o->reduce_only ? 0 : o->size,
                                           o->builder_fee))
            reason = INSUFFICIENT_MARGIN;
        if (reason) return reject(c, tag, 1, market_id, 2, order_id, reason);
        process_take_off(slot);
        Order moved = orders[slot];
        free_order(slot);
        moved.price = price;
        moved.size = size;
        moved.orig_size = size;
        moved.timestamp = now;
        emit(E_MODIFIED, [&] { return obj(order_id); }, [&] { return obj(price); },
             [&] { return obj(size); }, [&] { return objb(false); });
        process_execute(account, market_id, moved);
    }

    // ---------------------------------------------------------------- collateral

    bool check_l1_index(const Cmd& c, int field) {
        return c.is_exact(field) && c.v[field] == l1_consumed;
    }

    void process_deposit(const Cmd& c) {
        const int tag = T_DEPOSIT;
        if (!check_l1_index(c, 2)) return reject(c, tag, -1, -1, 2, c.v[2], OUT_OF_ORDER_L1_MESSAGE);
        i64 amount = c.v[1];
        int reason = 0;
        bool amount_int = c.src ? PyLong_CheckExact(PyTuple_GET_ITEM(c.src, 1)) : true;
        // an int beyond int64 reads as INT64_MAX (past the cap) or INT64_MIN (not positive)
        if (!amount_int || amount <= 0 || !c.key_ok) {
            reason = INVALID_AMOUNT;
        } else if ((i128)amount > (i128)MAX_COLLATERAL - (total_deposited - total_withdrawn)) {
            reason = COLLATERAL_CAP_EXCEEDED;
        }
        if (reason) {
            ++l1_consumed;
            emit(E_L1_CONSUMED, [&] { return echo(c, 2, c.v[2]); },
                 [&] { return account_obj(c); }, [&] { return obj(tag); });
            return reject(c, tag, -1, -1, 2, c.v[2], reason);
        }
        int32_t account = find_account(c);
        if (account < 0) {
            if (c.src) {
                account = create_account(c.key, PyTuple_GET_ITEM(c.src, 0));
            } else {
                PyObject* address = PyBytes_FromStringAndSize((const char*)c.key.data(), 20);
                account = create_account(c.key, address);
                Py_DECREF(address);
            }
        }
        accounts[account].collateral += amount;
        total_deposited += amount;
        ++l1_consumed;
        emit(E_DEPOSITED, [&] { return account_obj(c); }, [&] { return echo(c, 1, amount); },
             [&] { return echo(c, 2, c.v[2]); });
    }

    void process_withdraw(const Cmd& c) {
        if (protective) return reject(c, T_WITHDRAW, -1, -1, -1, 0, WITHDRAWALS_PAUSED);
        process_withdrawal(c, T_WITHDRAW, -1);
    }

    // ``ref_field``: the command's field echoed as the rejection's ref (the L1 index of a
    // forced withdrawal), -1 for 0
    void process_withdrawal(const Cmd& c, int tag, int ref_field) {
        i64 ref = ref_field >= 0 ? c.v[ref_field] : 0;
        i64 amount = c.v[1];
        if (!c.is_exact(1) || amount <= 0 || amount > MAX_COLLATERAL)
            return reject(c, tag, -1, -1, ref_field, ref, INVALID_AMOUNT);
        int32_t account = find_account(c);
        if (account < 0) return reject(c, tag, -1, -1, ref_field, ref, UNKNOWN_ACCOUNT);
        i128 equity, initial, maintenance;
        cross_risk(account, equity, initial, maintenance);
        if (equity - amount < initial)
            return reject(c, tag, -1, -1, ref_field, ref, INSUFFICIENT_COLLATERAL);
        accounts[account].collateral -= amount;
        total_withdrawn += amount;
        i64 withdrawal_id = next_withdrawal_id++;
        emit(E_WITHDRAWN, [&] { return account_obj(c); }, [&] { return obj(amount); },
             [&] { return obj(withdrawal_id); });
    }

    void process_set_protective_mode(const Cmd& c) {
        // ``type(enabled) is bool``: the decoder marks a real bool as exact
        if (c.is_exact(0) && c.is_true(0) != protective) {
            protective = c.is_true(0);
            emit(E_PROTECTIVE_SET, [&] { return objb(protective); });
        }
    }

    void process_update_isolated_margin(const Cmd& c) {
        const int tag = T_ISOLATED;
        i64 market_id = c.v[1];
        if (!c.is_exact(1) || market_id < 0 || market_id >= (i64)markets.size())
            return reject(c, tag, 1, market_id, -1, 0, UNKNOWN_MARKET);
        i64 delta = c.v[2];
        if (!c.is_exact(2) || delta == 0 || abs64(delta) > MAX_COLLATERAL)
            return reject(c, tag, 1, market_id, -1, 0, INVALID_AMOUNT);
        int32_t account = find_account(c);
        Position* p = account >= 0 ? &pos(account, market_id) : nullptr;
        if (!p || !p->exists || !p->isolated || !p->size)
            return reject(c, tag, 1, market_id, -1, 0, NOT_ISOLATED);
        bool ok;
        if (delta > 0) {
            i128 equity, initial, maintenance;
            cross_risk(account, equity, initial, maintenance);
            ok = equity - delta >= initial && accounts[account].collateral >= delta;
        } else {
            i128 equity, initial, maintenance;
            isolated_risk(market_id, *p, equity, initial, maintenance);
            ok = equity + delta >= initial;
        }
        if (!ok) return reject(c, tag, 1, market_id, -1, 0, INSUFFICIENT_MARGIN);
        accounts[account].collateral -= delta;
        p->iso_margin += delta;
        emit(E_ISO_MOVED, [&] { return account_obj(c); }, [&] { return echo(c, 1, market_id); },
             [&] { return echo(c, 2, delta); });
    }

    void process_schedule_cancel(const Cmd& c, i64 now) {
        const int tag = T_SCHEDULE;
        int32_t account = find_account(c);
        if (account < 0) return reject(c, tag, -1, -1, -1, 0, UNKNOWN_ACCOUNT);
        i64 at_time = c.v[1];
        if (!c.is_exact(1) || at_time < 0 || (0 < at_time && at_time <= now))
            return reject(c, tag, -1, -1, -1, 0, INVALID_TIME);
        accounts[account].scheduled_cancel = at_time;
        if (at_time) {
            scheduled.emplace(at_time, accounts[account].key);
            if (at_time < next_due) next_due = at_time;
        }
        emit(E_SCHEDULED_SET, [&] { return account_obj(c); }, [&] { return obj(at_time); });
    }

    void process_force_withdraw(const Cmd& c) {
        const int tag = T_FORCE_WITHDRAW;
        if (!check_l1_index(c, 2)) return reject(c, tag, -1, -1, 2, c.v[2], OUT_OF_ORDER_L1_MESSAGE);
        ++l1_consumed;
        emit(E_L1_CONSUMED, [&] { return echo(c, 2, c.v[2]); }, [&] { return account_obj(c); },
             [&] { return obj(tag); });
        process_withdrawal(c, tag, 2);
    }

    void process_force_cancel_all(const Cmd& c) {
        const int tag = T_FORCE_CANCEL;
        if (!check_l1_index(c, 1)) return reject(c, tag, -1, -1, 1, c.v[1], OUT_OF_ORDER_L1_MESSAGE);
        ++l1_consumed;
        emit(E_L1_CONSUMED, [&] { return echo(c, 1, c.v[1]); }, [&] { return account_obj(c); },
             [&] { return obj(tag); });
        int32_t account = find_account(c);
        if (account >= 0) process_cancel_account_orders(account, ALL_MARKETS, C_USER);
    }

    // ---------------------------------------------------------------- committee incentives

    bool signer_bit(const Cmd& c, size_t index) {
        if (!c.is_big(2)) return c.v[2] >= 0 && index < 63 && (c.v[2] >> index & 1);
        if (c.v[2] < 0 || !c.src) return false;  // not a bitmap: names no one
        PyObject* shift = PyLong_FromSize_t(index);
        PyObject* shifted = PyNumber_Rshift(PyTuple_GET_ITEM(c.src, 2), shift);
        PyObject* one = PyLong_FromLong(1);
        PyObject* bit = shifted ? PyNumber_And(shifted, one) : nullptr;
        bool set = bit && PyObject_IsTrue(bit) == 1;
        Py_XDECREF(bit);
        Py_XDECREF(one);
        Py_XDECREF(shifted);
        Py_DECREF(shift);
        return set;
    }

    void process_committee_rewards(const Cmd& c) {
        i128 collected = fee_pool - committee_fee_mark;
        i128 share = collected <= 0 ? 0 : floordiv(collected * committee_share_ppm, PPM);
        if (share) {
            fee_pool -= share;
            committee_pool += share;
            emit(E_COMMITTEE_FEES, [&] { return echo(c, 0, c.v[0]); }, [&] { return obj128(share); });
        }
        size_t members = committee_members.size();
        std::vector<std::pair<size_t, i64>> weights;
        i64 total = 0;
        for (size_t index = 0; index < members; ++index) {
            i64 weight = signer_bit(c, index) ? 1 : 0;
            if ((i64)index == committee_proposer) weight += 1;
            if (weight) {
                weights.emplace_back(index, weight);
                total += weight;
            }
        }
        i128 pool = committee_pool;
        if (pool > 0 && total) {
            for (auto& item : weights) {
                i128 amount = floordiv(pool * item.second, total);
                if (!amount) continue;
                const Key& key = committee_members[item.first];
                auto it = account_ids.find(key);
                int32_t account = it != account_ids.end()
                                      ? it->second
                                      : create_account(key, committee_addresses[item.first]);
                accounts[account].collateral += amount;
                committee_pool -= amount;
                emit(E_COMMITTEE_REWARD, [&] { return echo(c, 0, c.v[0]); },
                     [&] { return addr(account); }, [&] { return obj128(amount); });
            }
        }
        committee_fee_mark = fee_pool;
        i64 proposer = c.v[1];
        committee_proposer = c.is_int(1) && 0 <= proposer && proposer < (i64)members ? proposer : -1;
    }

    // ---------------------------------------------------------------- authorization

    static bool is_system(int tag) {
        switch (tag) {
            case T_DEPOSIT:
            case T_ORACLE:
            case T_ADVANCE:
            case T_COMMITTEE_BLOCK:
            case T_SIGNED:
            case T_FORCE_WITHDRAW:
            case T_FORCE_CANCEL:
            case T_PROTECTIVE:
                return true;
            default:
                return false;
        }
    }

    // the inner command's ``market`` field, as ``getattr(inner, "market", -1)`` reads it
    static int market_field(int tag) {
        switch (tag) {
            case T_PLACE:
            case T_CANCEL:
            case T_CANCEL_CLIENT:
            case T_CANCEL_ALL:
            case T_MODIFY:
            case T_LEVERAGE:
            case T_ISOLATED:
            case T_ORACLE:
            case T_BUILDER_ORDER:
                return 1;
            default:
                return -1;
        }
    }

    int check_authorization(const Cmd& c, const Cmd& inner, i64 now) {
        if (is_system(inner.tag)) return NOT_SIGNABLE;
        if (!same_address(c, inner)) {
            auto it = c.key_ok ? agent_master.find(c.key) : agent_master.end();
            if (it == agent_master.end() || !inner.key_ok || accounts[it->second].key != inner.key)
                return UNKNOWN_AGENT;
            if (inner.tag == T_WITHDRAW || inner.tag == T_APPROVE_AGENT ||
                inner.tag == T_APPROVE_BUILDER)
                return AGENT_NOT_ALLOWED;
            i64 valid_until = 0;
            for (const auto& item : accounts[it->second].agents)
                if (item.first == c.key) valid_until = item.second;
            if (valid_until && valid_until <= now) return AGENT_EXPIRED;
        }
        // an int beyond int64 reads as a value past either bound: the comparisons hold
        if (c.is_true(2) && c.v[2] < now) return INTENT_EXPIRED;
        i64 nonce = c.v[1];
        bool nonce_int = c.intlike >> 1 & 1;
        if (!nonce_int || !(now - NONCE_PAST_MS < nonce && nonce < now + NONCE_FUTURE_MS))
            return NONCE_OUT_OF_WINDOW;
        auto it = nonces.find(signer_name(c));
        if (it != nonces.end() && !it->second.empty() && nonce <= it->second.back()) {
            const std::vector<i64>& kept = it->second;
            auto at = std::lower_bound(kept.begin(), kept.end(), nonce);
            if (*at == nonce) return NONCE_ALREADY_USED;
            if ((i64)kept.size() >= NONCES_KEPT && at == kept.begin()) return NONCE_TOO_LOW;
        }
        return 0;
    }

    static std::string signer_name(const Cmd& c) {
        if (!c.src) return std::string((const char*)c.key.data(), 20);
        PyObject* signer = PyTuple_GET_ITEM(c.src, 0);
        return std::string(PyBytes_AS_STRING(signer), PyBytes_GET_SIZE(signer));
    }

    // the first fields of two commands are equal (as Python compares them)
    static bool same_address(const Cmd& a, const Cmd& b) {
        if (a.key_ok && b.key_ok) return a.key == b.key;
        if (a.key_ok != b.key_ok || !a.src || !b.src) return false;
        return PyObject_RichCompareBool(PyTuple_GET_ITEM(a.src, 0), PyTuple_GET_ITEM(b.src, 0),
                                        Py_EQ) == 1;
    }

    // field 1 (an agent or builder address) as an object for events
    static PyObject* field1_obj(const Cmd& c) {
        if (c.src) {
            PyObject* o = PyTuple_GET_ITEM(c.src, 1);
            Py_INCREF(o);
            return o;
        }
        return PyBytes_FromStringAndSize((const char*)c.key2.data(), 20);
    }

    void process_signed(const Cmd& c, i64 now) {
        const Cmd& inner = (*c.inner)[0];
        int reason = check_authorization(c, inner, now);
        if (reason) {
            int mf = market_field(inner.tag);
            emit(E_REJECTED, [&] { return account_obj(c); }, [&] { return obj(inner.tag); },
                 [&] { return mf >= 0 ? echo(inner, mf, inner.v[mf]) : obj(-1); },
                 [&] { return echo(c, 1, c.v[1]); }, [&] { return obj(reason); });
            return;
        }
        i64 nonce = c.v[1];
        std::string name = signer_name(c);
        auto it = nonces.find(name);
        if (it == nonces.end()) {
            nonces.emplace(name, std::vector<i64>{nonce});
            nonce_order.push_back(name);
        } else {
            std::vector<i64>& kept = it->second;
            if (kept.empty() || nonce > kept.back())
                kept.push_back(nonce);
            else
                kept.insert(std::lower_bound(kept.begin(), kept.end(), nonce), nonce);
            if ((i64)kept.size() > NONCES_KEPT) kept.erase(kept.begin());
        }
        dispatch(inner, now);
    }

    void process_batch(const Cmd& c, i64 now) {
        if (!c.inner) return;
        i64 index = 0;
        for (const Cmd& item : *c.inner) {
            emit(E_BATCH_ITEM, [&] { return obj(index); });
            ++index;
            if (!batchable(item.tag) || !same_address(item, c)) {
                int mf = market_field(item.tag);
                emit(E_REJECTED, [&] { return account_obj(c); }, [&] { return obj(item.tag); },
                     [&] { return mf >= 0 ? echo(item, mf, item.v[mf]) : obj(-1); },
                     [&] { return obj(0); }, [&] { return obj(NOT_BATCHABLE); });
                continue;
            }
            dispatch(item, now);
        }
    }

    void process_approve_agent(const Cmd& c, i64 now) {
        const int tag = T_APPROVE_AGENT;
        int32_t account = find_account(c);
        if (account < 0) return reject(c, tag, -1, -1, -1, 0, UNKNOWN_ACCOUNT);
        auto master = c.key2_ok ? agent_master.find(c.key2) : agent_master.end();
        bool has_master = master != agent_master.end();
        if (!c.key2_ok || c.key2 == c.key || (has_master && master->second != account))
            return reject(c, tag, -1, -1, -1, 0, AGENT_TAKEN);
        i64 valid_until = c.v[2];
        std::vector<std::pair<Key, i64>>& agents = accounts[account].agents;
        auto held = std::find_if(agents.begin(), agents.end(),
                                 [&](const auto& item) { return item.first == c.key2; });
        if (c.is_true(2) && valid_until <= now) {
            if (has_master) {
                agent_master.erase(master);
                agents.erase(held);
            }
        } else {
            agent_master[c.key2] = account;
            if (held != agents.end())
                held->second = valid_until;
            else
                agents.emplace_back(c.key2, valid_until);
        }
        emit(E_AGENT_APPROVED, [&] { return account_obj(c); },
             [&] { return field1_obj(c); }, [&] { return echo(c, 2, valid_until); });
    }

    void process_approve_builder_fee(const Cmd& c) {
        const int tag = T_APPROVE_BUILDER;
        i64 max_fee = c.v[2];
        if (!c.key2_ok || !c.is_exact(2) || max_fee < 0 || max_fee > MAX_BUILDER_APPROVAL)
            return reject(c, tag, -1, -1, -1, 0, INVALID_BUILDER_FEE);
        int32_t account = find_account(c);
        if (account < 0) return reject(c, tag, -1, -1, -1, 0, UNKNOWN_ACCOUNT);
        auto it = account_ids.find(c.key2);
        i128 value = 0;
        if (it != account_ids.end()) {
            int32_t b = it->second;
            value = accounts[b].collateral;
            for (size_t m = 0; m < markets.size(); ++m) {
                const Position& p = pos(b, m);
                if (p.exists) value += p.iso_margin + (i128)p.size * markets[m].mark_price;
            }
        }
        if (value < MIN_BUILDER_ACCOUNT_VALUE)
            return reject(c, tag, -1, -1, -1, 0, BUILDER_BALANCE_TOO_LOW);
        std::vector<std::pair<Key, i64>>& builders = accounts[account].builders;
        auto held = std::find_if(builders.begin(), builders.end(),
                                 [&](const auto& item) { return item.first == c.key2; });
        if (held != builders.end())
            held->second = max_fee;
        else
            builders.emplace_back(c.key2, max_fee);
        emit(E_BUILDER_APPROVED, [&] { return account_obj(c); },
             [&] { return field1_obj(c); }, [&] { return obj(max_fee); });
    }

    void process_set_leverage(const Cmd& c) {
        const int tag = T_LEVERAGE;
        i64 market_id = c.v[1];
        if (!c.is_exact(1) || market_id < 0 || market_id >= (i64)markets.size())
            return reject(c, tag, 1, market_id, -1, 0, UNKNOWN_MARKET);
        Market& m = markets[market_id];
        i64 leverage = c.v[2];
        if (!c.is_exact(2) || leverage < 1 || leverage > m.spec.max_leverage)
            return reject(c, tag, 1, market_id, -1, 0, INVALID_LEVERAGE);
        int32_t account = find_account(c);
        if (account < 0) return reject(c, tag, 1, market_id, -1, 0, UNKNOWN_ACCOUNT);
        Position& p = pos(account, market_id);
        bool isolated = c.is_true(3);
        if (p.exists && p.isolated != isolated && (p.size || p.norders))
            return reject(c, tag, 1, market_id, -1, 0, MODE_CHANGE_WITH_POSITION);
        if (!p.exists) {
            reset_position(p, m);
            set_exists(account, market_id, p, true);
        }
        i64 old_leverage = p.leverage;
        bool old_isolated = p.isolated;
        p.leverage = leverage;
        p.isolated = isolated;
        p.imf = initial_fraction(m.spec.initial_margin_ppm, leverage);
        i128 equity, initial, maintenance;
        cross_risk(account, equity, initial, maintenance);
        bool ok = equity >= initial;
        if (ok && p.isolated && p.size) {
            i128 iso_equity, iso_initial, iso_maintenance;
            isolated_risk(market_id, p, iso_equity, iso_initial, iso_maintenance);
            ok = iso_equity >= iso_initial;
        }
        if (!ok && leverage < old_leverage) {
            p.leverage = old_leverage;
            p.isolated = old_isolated;
            p.imf = initial_fraction(m.spec.initial_margin_ppm, old_leverage);
            maybe_drop_position(account, market_id, p);
            return reject(c, tag, 1, market_id, -1, 0, INSUFFICIENT_MARGIN);
        }
        maybe_drop_position(account, market_id, p);
        emit(E_LEVERAGE_SET, [&] { return account_obj(c); }, [&] { return echo(c, 1, market_id); },
             [&] { return echo(c, 2, leverage); }, [&] { return echo(c, 3, 0); });
    }

    // ---------------------------------------------------------------- prices and time

    void process_oracle_price(const Cmd& c, i64 now) {
        const int tag = T_ORACLE;
        i64 market_id = c.v[1];
        if (!c.is_exact(1) || market_id < 0 || market_id >= (i64)markets.size())
            return reject(c, tag, 1, market_id, -1, 0, UNKNOWN_MARKET);
        Market& m = markets[market_id];
        PyObject* publisher = c.src ? PyTuple_GET_ITEM(c.src, 0) : nullptr;
        std::string name;
        if (publisher && PyBytes_Check(publisher))
            name.assign(PyBytes_AS_STRING(publisher), PyBytes_GET_SIZE(publisher));
        else if (!publisher)
            name.assign((const char*)c.key.data(), 20);
        bool known = (publisher == nullptr || PyBytes_Check(publisher)) &&
                     std::find(publishers.begin(), publishers.end(), name) != publishers.end();
        if (!known) return reject(c, tag, 1, market_id, -1, 0, 113 /* UNKNOWN_PUBLISHER */);
        i64 price = c.v[2];
        if (!c.is_exact(2) || price <= 0 || price > m.spec.max_price)
            return reject(c, tag, 1, market_id, -1, 0, INVALID_PRICE);
        bool found = false;
        for (Oracle& o : m.oracle) {
            if (o.publisher == name) {
                o.price = price;
                o.time = now;
                found = true;
                break;
            }
        }
        if (!found) {
            PyObject* pobj = publisher ? publisher
                                       : PyBytes_FromStringAndSize(name.data(), name.size());
            if (publisher) Py_INCREF(pobj);
            m.oracle.push_back(Oracle{name, pobj, price, now});
        }
        emit(E_ORACLE_ACCEPTED, [&] { return account_obj(c); }, [&] { return obj(market_id); },
             [&] { return obj(price); });
        size_t one[1] = {(size_t)market_id};
        process_refresh_prices(one, 1, now);
    }

    void process_refresh_prices_all(i64 now) {
        std::vector<size_t> all(markets.size());
        for (size_t i = 0; i < all.size(); ++i) all[i] = i;
        process_refresh_prices(all.data(), all.size(), now);
    }

    i64 calculate_index(const Market& m, i64 now) {
        i64 oldest = now - m.spec.oracle_staleness_ms;
        i64 fresh[64];
        std::vector<i64> many;
        size_t n = 0;
        for (const Oracle& o : m.oracle) {
            if (o.time >= oldest) {
                if (n < 64)
                    fresh[n] = o.price;
                else {
                    if (many.empty()) many.assign(fresh, fresh + 64);
                    many.push_back(o.price);
                }
                ++n;
            }
        }
        if (n == 0) return 0;
        i64* values = many.empty() ? fresh : many.data();
        std::sort(values, values + n);
        return values[(n - 1) / 2];
    }

    i64 calculate_mark(const Market& m, i64 index) {
        if (index == 0) return 0;
        i64 bid = m.bids.empty() ? index : m.bids.best();
        i64 ask = m.asks.empty() ? index : m.asks.best();
        i64 v[3] = {index, bid, ask};
        std::sort(v, v + 3);
        i64 mark = v[1];
        i64 band = (i64)((i128)index * m.spec.mark_band_ppm / PPM);
        return std::min(std::max(mark, index - band), index + band);
    }

    void process_refresh_prices(const size_t* which, size_t n, i64 now) {
        std::vector<size_t> changed;
        for (size_t i = 0; i < n; ++i) {
            Market& m = markets[which[i]];
            i64 index = calculate_index(m, now);
            i64 mark = calculate_mark(m, index);
            if (index != m.index_price || mark != m.mark_price) {
                m.index_price = index;
                m.mark_price = mark;
                marks[which[i]] = mark;
                emit(E_MARK_UPDATED, [&] { return obj(m.spec.market_id); },
                     [&] { return obj(index); }, [&] { return obj(mark); });
                changed.push_back(which[i]);
            }
        }
        for (size_t market : changed)
            if (markets[market].mark_price && !markets[market].triggers.empty())
                process_fire_triggers(market);
        process_liquidations(changed);
    }

    // ---------------------------------------------------------------- liquidation
    // (asyncdex/engine/liquidation.py; cross margin: isolated positions are never opened here)

    void process_liquidations(const std::vector<size_t>& changed) {
        std::vector<size_t> scope;
        for (size_t market : changed)
            if (markets[market].mark_price) scope.push_back(market);
        if (scope.empty()) return;
        while (liquidation_pass(scope)) {
        }
    }

    bool liquidation_pass(const std::vector<size_t>& scope) {
        std::vector<int32_t> candidates;
        for (size_t market : scope)
            for (int32_t account : markets[market].holders) candidates.push_back(account);
        std::sort(candidates.begin(), candidates.end(), [&](int32_t a, int32_t b) {
            return accounts[a].key < accounts[b].key;
        });
        candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
        bool liquidated = false;
        std::vector<size_t> sorted_scope(scope);
        std::sort(sorted_scope.begin(), sorted_scope.end());
        for (int32_t account : candidates) {
            for (size_t market : sorted_scope) {
                Position& p = pos(account, market);
                if (p.exists && p.isolated && p.size) {
                    i128 equity, initial, maintenance;
                    isolated_risk(market, p, equity, initial, maintenance);
                    if (equity < maintenance) {
                        liquidate(account, (i64)market, equity, maintenance);
                        liquidated = true;
                    }
                }
            }
            bool any = false, any_zero = false;
            for (size_t m = 0; m < markets.size(); ++m) {
                const Position& p = pos(account, m);
                if (p.exists && p.size && !p.isolated) {
                    any = true;
                    if (markets[m].mark_price == 0) any_zero = true;
                }
            }
            if (!any || any_zero) continue;
            i128 equity, initial, maintenance;
            cross_risk(account, equity, initial, maintenance);
            if (equity < maintenance) {
                liquidate(account, ALL_MARKETS, equity, maintenance);
                liquidated = true;
            }
        }
        return liquidated;
    }

    i128 cross_equity(int32_t account) {
        i128 equity, initial, maintenance;
        cross_risk(account, equity, initial, maintenance);
        return equity;
    }

    static i128 bankruptcy_price(i128 size, i128 mark, i128 equity) {
        if (size > 0) return mark - floordiv(equity, size);
        return mark + floordiv(equity, -size);
    }

    // Where a liquidation reads equity and moves money: the cross account (``scope`` is
    // ALL_MARKETS) or one isolated position (liquidation.py's ``_Balance``).
    struct Balance {
        Core& core;
        int32_t account;
        i64 scope;
        i128 base_collateral;

        std::vector<size_t> positions() {
            std::vector<size_t> out;
            for (size_t m = 0; m < core.markets.size(); ++m) {
                const Position& p = core.pos(account, m);
                if (!p.exists || !p.size) continue;
                if (scope == ALL_MARKETS ? !p.isolated : (i64)m == scope) out.push_back(m);
            }
            return out;
        }
        i128 equity() {
            if (scope == ALL_MARKETS) return core.cross_equity(account);
            const Position& p = core.pos(account, scope);
            i128 held = p.iso_margin + (i128)p.size * core.markets[scope].mark_price;
            // a flat isolated position has already handed its margin to the cross balance
            return held + core.accounts[account].collateral - base_collateral;
        }
        void credit(i128 amount) {
            if (scope == ALL_MARKETS) {
                core.accounts[account].collateral += amount;
                return;
            }
            Position& p = core.pos(account, scope);
            if (!p.exists || (p.size == 0 && p.iso_margin == 0)) {
                core.accounts[account].collateral += amount;
                return;
            }
            p.iso_margin += amount;
            if (p.size == 0 && p.iso_margin >= 0) {
                core.accounts[account].collateral += p.iso_margin;
                p.iso_margin = 0;
            }
        }
    };

    i128 cover_from_insurance(Balance& balance) {
        i128 shortfall = -balance.equity();
        if (shortfall <= 0) return 0;
        i128 cover = std::min(shortfall, insurance_fund);
        if (cover > 0) {
            insurance_fund -= cover;
            balance.credit(cover);
        }
        return cover;
    }

    void liquidate(int32_t account, i64 scope, i128 equity, i128 maintenance) {
        emit(E_LIQ_STARTED, [&] { return addr(account); }, [&] { return obj(scope); },
             [&] { return obj128(equity); }, [&] { return obj128(maintenance); });
        process_cancel_account_orders(account, scope, 6 /* CancelReason.LIQUIDATION */);
        Balance balance{*this, account, scope, accounts[account].collateral};
        i128 closed_notional = 0;
        for (size_t market : balance.positions()) {
            Market& m = markets[market];
            Position& p = pos(account, market);
            i64 size = p.size;
            i64 mark = m.mark_price;
            i64 tick = m.spec.tick;
            i128 limit = bankruptcy_price(size, mark, balance.equity() + insurance_fund);
            if (size > 0) {
                limit = std::max(-floordiv(-limit, tick) * tick, (i128)tick);
            } else {
                limit = floordiv(limit, tick) * tick;
                if (limit <= 0) continue;
            }
            if (limit > INT64_MAX) throw Unsupported("a liquidation limit beyond int64");
            Order o;
            o.order_id = next_order_id++;
            o.price = (i64)limit;
            o.size = abs64(size);
            o.orig_size = o.size;
            o.client_id = 0;
            o.expiry = 0;
            o.timestamp = time;
            o.trigger_price = 0;
            o.account = account;
            o.builder = -1;
            o.builder_fee = 0;
            o.prev = o.next = o.pprev = o.pnext = -1;
            o.market = (int16_t)market;
            o.is_buy = size < 0;
            o.reduce_only = true;
            o.tif = IOC;
            o.order_type = LIMIT;
            o.trigger_kind = 0;
            emit(E_ACCEPTED, [&] { return obj(o.order_id); }, [&] { return addr(account); },
                 [&] { return obj((i64)market); }, [&] { return objb(size < 0); },
                 [&] { return obj(o.price); }, [&] { return obj(o.size); },
                 [&] { return obj(0); });
            protocol_taker = true;
            try {
                process_execute(account, market, o);
            } catch (...) {
                protocol_taker = false;
                throw;
            }
            protocol_taker = false;
            closed_notional += (i128)(abs64(size) - abs64(pos(account, market).size)) * mark;
        }
        i128 insurance_paid = cover_from_insurance(balance);
        std::vector<size_t> remaining = balance.positions();
        if (!remaining.empty()) {
            i128 total = 0;
            for (size_t market : remaining)
                total += (i128)abs64(pos(account, market).size) * markets[market].mark_price;
            i128 equity_left = balance.equity();
            for (size_t market : remaining) {
                Market& m = markets[market];
                Position& p = pos(account, market);
                i128 share = floordiv(equity_left * abs64(p.size) * m.mark_price, total);
                i128 price = bankruptcy_price(p.size, m.mark_price, share);
                closed_notional += (i128)abs64(p.size) * m.mark_price;
                deleverage(account, market, price);
            }
        }
        i128 fee = 0;
        i128 equity_after = balance.equity();
        if (equity_after > 0) {
            i64 fee_ppm = 0;
            if (scope == ALL_MARKETS) {
                for (i64 market_fee : liquidation_fee_ppm) fee_ppm = std::max(fee_ppm, market_fee);
            } else {
                fee_ppm = liquidation_fee_ppm[scope];
            }
            fee = std::min(equity_after, ceildiv(closed_notional * fee_ppm, PPM));
            balance.credit(-fee);
            insurance_fund += fee;
        }
        insurance_paid += cover_from_insurance(balance);
        i128 left = balance.equity();
        i128 bad_debt = left < 0 ? -left : 0;
        for (size_t m = 0; m < markets.size(); ++m) {
            Position& p = pos(account, m);
            if (p.exists && (scope == ALL_MARKETS || (i64)m == scope))
                maybe_drop_position(account, m, p);
        }
        emit(E_LIQ_SETTLED, [&] { return addr(account); }, [&] { return obj(scope); },
             [&] { return obj128(fee); }, [&] { return obj128(insurance_paid); },
             [&] { return obj128(bad_debt); });
    }

    // close the account's position at ``price`` against the most profitable opposite ones
    void deleverage(int32_t account, size_t market, i128 price128) {
        if (price128 > INT64_MAX || price128 < INT64_MIN)
            throw Unsupported("a deleveraging price beyond int64");
        i64 price = (i64)price128;
        Market& m = markets[market];
        Position& p = pos(account, market);
        i64 mark = m.mark_price;
        bool is_long = p.size > 0;
        std::vector<std::pair<i128, int32_t>> ranked;
        for (int32_t other : m.holders) {
            if (other == account) continue;
            const Position& q = pos(other, market);
            if ((q.size > 0) != is_long) ranked.emplace_back(-((i128)q.size * mark - q.entry_notional), other);
        }
        std::sort(ranked.begin(), ranked.end(), [&](const auto& a, const auto& b) {
            if (a.first != b.first) return a.first < b.first;
            return accounts[a.second].key < accounts[b.second].key;
        });
        for (const auto& item : ranked) {
            if (p.size == 0) break;
            int32_t other = item.second;
            Position& q = pos(other, market);
            i64 quantity = std::min(abs64(p.size), abs64(q.size));
            process_trade(account, market, !is_long, quantity, price, 0);
            process_trade(other, market, is_long, quantity, price, 0);
            emit(E_DELEVERAGED, [&] { return obj((i64)market); }, [&] { return addr(account); },
                 [&] { return addr(other); }, [&] { return obj(quantity); },
                 [&] { return obj(price); }, [&] { return objb(!is_long); });
            if (q.size == 0) {
                std::vector<std::pair<i64, int32_t>> ids;
                for (int32_t slot = q.ohead; slot >= 0; slot = orders[slot].pnext)
                    if (orders[slot].reduce_only) ids.emplace_back(orders[slot].order_id, slot);
                std::sort(ids.begin(), ids.end());
                for (auto& id : ids) process_remove_order(id.second, C_REDUCE_ONLY);
                if (q.exists) maybe_drop_position(other, market, q);
            }
        }
    }

    void process_due() {
        i64 now = time;
        while (!expiries.empty() && expiries.top().first <= now) {
            auto [expiry, order_id] = expiries.top();
            expiries.pop();
            Order* o = live_order(order_id);
            if (o && o->expiry == expiry) process_remove_order(id_slot[order_id], C_EXPIRED);
        }
        while (!scheduled.empty() && scheduled.top().first <= now) {
            auto [at_time, key] = scheduled.top();
            scheduled.pop();
            auto it = account_ids.find(key);
            if (it != account_ids.end() && accounts[it->second].scheduled_cancel == at_time) {
                accounts[it->second].scheduled_cancel = 0;
                process_cancel_account_orders(it->second, ALL_MARKETS, C_SCHEDULED);
            }
        }
        std::vector<size_t> funded;
        for (size_t i = 0; i < markets.size(); ++i) {
            Market& m = markets[i];
            const MarketSpecN& s = m.spec;
            if (m.next_sample == 0) {
                m.next_sample = (now / s.premium_sample_ms + 1) * s.premium_sample_ms;
                m.next_funding = (now / s.funding_interval_ms + 1) * s.funding_interval_ms;
            }
            if (s.auction_interval_ms) {
                // cancels, expiries and dead-man switches due by now came first; the auction
                // then clears what arrived before ``now``, and funding follows
                i64 interval = s.auction_interval_ms;
                if (m.next_auction == 0) {
                    m.next_auction = (now / interval + 1) * interval;
                } else if (now >= m.next_auction) {
                    process_auction(i);
                    m.next_auction = (now / interval + 1) * interval;
                }
            }
            if (now >= m.next_sample) process_premium_sample(m, now);
            if (now >= m.next_funding) {
                process_funding(m, now);
                funded.push_back(i);
            }
        }
        process_liquidations(funded);
        i64 due = NO_TIME;
        if (!expiries.empty()) due = expiries.top().first;
        if (!scheduled.empty() && scheduled.top().first < due) due = scheduled.top().first;
        for (const Market& m : markets) {
            due = std::min({due, m.next_sample, m.next_funding});
            if (m.spec.auction_interval_ms) due = std::min(due, m.next_auction);
        }
        next_due = due;
    }

    void process_premium_sample(Market& m, i64 now) {
        const MarketSpecN& s = m.spec;
        i64 index = m.index_price;
        if (index && !m.bids.empty() && !m.asks.empty()) {
            i128 mid = floordiv((i128)m.bids.best() + m.asks.best(), 2);
            i128 premium = floordiv((mid - index) * PPB, index);
            i128 cap = s.funding_cap_ppb;
            m.premium_sum += std::min(std::max(premium, -cap), cap);
            m.premium_count += 1;
        }
        m.next_sample = (now / s.premium_sample_ms + 1) * s.premium_sample_ms;
    }

    void process_funding(Market& m, i64 now) {
        const MarketSpecN& s = m.spec;
        i128 average = m.premium_count ? floordiv(m.premium_sum, m.premium_count) : 0;
        i128 cap = s.funding_cap_ppb;
        i128 rate = std::min(std::max(average + s.interest_ppb, -cap), cap);
        m.premium_sum = 0;
        m.premium_count = 0;
        m.next_funding = (now / s.funding_interval_ms + 1) * s.funding_interval_ms;
        i64 index = m.index_price;
        if (index == 0) return;
        m.funding_rate_ppb = (i64)rate;
        m.cumulative_funding += rate * index;
        i128 dust = 0;
        size_t market = &m - markets.data();
        for (int32_t account : m.holders) {
            Position& p = pos(account, market);
            i128 payment = ceildiv((i128)p.size * rate * index, PPB);
            dust += payment;
            p.cum_funding += payment;
            if (p.isolated)
                p.iso_margin -= payment;
            else
                accounts[account].collateral -= payment;
        }
        insurance_fund += dust;
        emit(E_FUNDING_PAID, [&] { return obj(s.market_id); }, [&] { return obj128(rate); },
             [&] { return obj(index); }, [&] { return obj128(m.cumulative_funding); },
             [&] { return obj128(dust); });
    }
};

// ------------------------------------------------------------------ decoding

// how many int fields each command tag has after the account (the layout of Cmd.v)
void decode_int(Cmd& c, int i, PyObject* item) {
    c.v[i] = 0;
    if (PyLong_Check(item)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(item, &overflow);
        c.intlike |= 1u << i;
        // ``type(x) is int`` refuses bools and IntEnum members
        if (PyLong_CheckExact(item)) c.exact |= 1u << i;
        if (overflow) {
            // beyond int64: compares like a value past every bound, in its direction
            c.v[i] = overflow > 0 ? INT64_MAX : INT64_MIN;
            c.overflow |= 1u << i;
            c.truthy |= 1u << i;
            return;
        }
        c.v[i] = v;
        if (v) c.truthy |= 1u << i;
        return;
    }
    if (PyObject_IsTrue(item) == 1) c.truthy |= 1u << i;
}

// ------------------------------------------------------------------ trusted journal records

// zlib's CRC-32 (the journal's record checksum), table-driven, eight bytes a step
// ("slicing-by-8": eight tables, one load each per byte of a 64-bit word, little-endian
// hosts): no zlib headers needed to build. Recovery checks every record of the journal, so
// this is most of what checking costs.
struct Crc32 {
    uint32_t table[8][256];
    Crc32() {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; ++i)
            for (int t = 1; t < 8; ++t)
                table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
    }
    uint32_t operator()(const uint8_t* p, size_t n) const {
        uint32_t c = 0xFFFFFFFFu;
        static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "slicing-by-8 reads words LE");
        while (n >= 8) {
            uint64_t word;
            std::memcpy(&word, p, 8);
            word ^= c;
            c = table[7][word & 0xFF] ^ table[6][(word >> 8) & 0xFF] ^
                table[5][(word >> 16) & 0xFF] ^ table[4][(word >> 24) & 0xFF] ^
                table[3][(word >> 32) & 0xFF] ^ table[2][(word >> 40) & 0xFF] ^
                table[1][(word >> 48) & 0xFF] ^ table[0][word >> 56];
            p += 8;
            n -= 8;
        }
        while (n--) c = table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
};
const Crc32 crc32;
constexpr uint64_t MAX_PAYLOAD_BYTES = 16u << 20;  // asyncdex.sequencer.journal
constexpr size_t RECORD_HEADER_BYTES = 16;          // <IIQ: crc, length, seq

// The journal's framing check of the record at ``pos`` in a segment image of ``size`` bytes:
// the offset just past it if its header, length, CRC-32 and seq (``expected``) are all
// right, else 0 (torn, damaged or out of sequence: the Python reader says which).
inline size_t clean_record_end(const uint8_t* base, size_t size, size_t pos, i64 expected) {
    if (pos + RECORD_HEADER_BYTES > size) return 0;
    uint32_t crc, length;
    uint64_t seq;
    std::memcpy(&crc, base + pos, 4);
    std::memcpy(&length, base + pos + 4, 4);
    std::memcpy(&seq, base + pos + 8, 8);
    size_t end = pos + RECORD_HEADER_BYTES + length;
    if (length > MAX_PAYLOAD_BYTES || end > size || (i64)seq != expected ||
        crc32(base + pos + 4, end - pos - 4) != crc)
        return 0;
    return end;
}

// One msgpack value of a journal record (asyncdex.sequencer.records: the subset
// ``encode_record`` writes: ints, big ints as ext type 1, bools, bytes, arrays).
struct MValue {
    enum Kind { INT, BIG, BOOL, BYTES, ARRAY, NIL } kind = NIL;
    i64 v = 0;
    unsigned __int128 big = 0;  // BIG: the magnitude when it fits 128 bits
    bool negative = false, big_fits = false;
    const uint8_t* data = nullptr;
    size_t len = 0;
    std::vector<MValue> items;
};

struct MReader {
    const uint8_t* p;
    const uint8_t* end;
    uint64_t be(size_t n) {
        if ((size_t)(end - p) < n) throw Unsupported("a truncated journal record");
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) v = v << 8 | p[i];
        p += n;
        return v;
    }
    void read(MValue& out) {
        uint8_t b = (uint8_t)be(1);
        if (b <= 0x7f) { out.kind = MValue::INT; out.v = b; return; }
        if (b >= 0xe0) { out.kind = MValue::INT; out.v = (int8_t)b; return; }
        if ((b & 0xf0) == 0x90) return array(out, b & 0x0f);
        switch (b) {
            case 0xc0: out.kind = MValue::NIL; return;
            case 0xc2: case 0xc3: out.kind = MValue::BOOL; out.v = b == 0xc3; return;
            case 0xcc: out.kind = MValue::INT; out.v = (i64)be(1); return;
            case 0xcd: out.kind = MValue::INT; out.v = (i64)be(2); return;
            case 0xce: out.kind = MValue::INT; out.v = (i64)be(4); return;
            case 0xcf: {
                uint64_t u = be(8);
                if (u > (uint64_t)INT64_MAX) {
                    out.kind = MValue::BIG;
                    out.big = u;
                    out.big_fits = true;
                } else {
                    out.kind = MValue::INT;
                    out.v = (i64)u;
                }
                return;
            }
            case 0xd0: out.kind = MValue::INT; out.v = (int8_t)be(1); return;
            case 0xd1: out.kind = MValue::INT; out.v = (int16_t)be(2); return;
            case 0xd2: out.kind = MValue::INT; out.v = (int32_t)be(4); return;
            case 0xd3: out.kind = MValue::INT; out.v = (i64)be(8); return;
            case 0xc4: return bytes(out, be(1));
            case 0xc5: return bytes(out, be(2));
            case 0xc6: return bytes(out, be(4));
            case 0xdc: return array(out, be(2));
            case 0xdd: return array(out, be(4));
            case 0xd4: return ext(out, 1);
            case 0xd5: return ext(out, 2);
            case 0xd6: return ext(out, 4);
            case 0xd7: return ext(out, 8);
            case 0xd8: return ext(out, 16);
            case 0xc7: return ext(out, be(1));
            case 0xc8: return ext(out, be(2));
            case 0xc9: return ext(out, be(4));
            default: throw Unsupported("a journal record the native decoder does not read");
        }
    }
    void array(MValue& out, uint64_t n) {
        out.kind = MValue::ARRAY;
        out.items.resize(n);
        for (auto& item : out.items) read(item);
    }
    void bytes(MValue& out, uint64_t n) {
        if ((uint64_t)(end - p) < n) throw Unsupported("a truncated journal record");
        out.kind = MValue::BYTES;
        out.data = p;
        out.len = n;
        p += n;
    }
    void ext(MValue& out, uint64_t n) {
        uint8_t code = (uint8_t)be(1);
        if (code != 1 || (uint64_t)(end - p) < n || n == 0) throw Unsupported("an unknown ext type");
        // a big int: two's complement, big-endian (asyncdex.types.packing)
        out.kind = MValue::BIG;
        out.negative = p[0] & 0x80;
        size_t skip = 0;
        while (skip < n && p[skip] == (out.negative ? 0xff : 0x00)) ++skip;
        out.big_fits = !out.negative && n - skip <= 16;
        if (out.big_fits)
            for (size_t i = skip; i < n; ++i) out.big = out.big << 8 | p[i];
        p += n;
    }
};

class PyCore {
public:
    Core core;
    PyCore(py::list specs, py::list publishers, i64 max_open, py::tuple events,
           py::tuple commands)
        : core(specs, publishers, max_open, events, commands) {}

    int tag_of(PyObject* cmd) {
        PyObject* type = (PyObject*)Py_TYPE(cmd);
        for (int i = 0; i < N_TAGS; ++i)
            if (core.command_types[i] == type) return i;
        return -1;
    }

    void decode(PyObject* cmd, Cmd& c) {
        c.src = cmd;
        c.tag = tag_of(cmd);
        if (c.tag < 0) throw Unsupported("not a command");
        Py_ssize_t n = PyTuple_GET_SIZE(cmd);
        PyObject* first = n ? PyTuple_GET_ITEM(cmd, 0) : nullptr;
        if (first && PyBytes_Check(first) && PyBytes_GET_SIZE(first) == 20) {
            std::memcpy(c.key.data(), PyBytes_AS_STRING(first), 20);
            c.key_ok = true;
        }
        if (c.tag == T_PROTECTIVE) {
            PyObject* item = PyTuple_GET_ITEM(cmd, 0);
            if (PyBool_Check(item)) c.exact |= 1;
            if (item == Py_True) c.truthy |= 1;
            return;
        }
        if (c.tag == T_SIGNED) {
            decode_int(c, 1, PyTuple_GET_ITEM(cmd, 1));
            decode_int(c, 2, PyTuple_GET_ITEM(cmd, 2));
            c.inner = std::make_shared<std::vector<Cmd>>(1);
            decode(PyTuple_GET_ITEM(cmd, 3), (*c.inner)[0]);
            return;
        }
        if (c.tag == T_BATCH) {
            PyObject* items = PyTuple_GET_ITEM(cmd, 1);
            if (!PyTuple_Check(items)) throw Unsupported("a batch whose commands are not a tuple");
            Py_ssize_t count = PyTuple_GET_SIZE(items);
            c.inner = std::make_shared<std::vector<Cmd>>(count);
            for (Py_ssize_t i = 0; i < count; ++i) decode(PyTuple_GET_ITEM(items, i), (*c.inner)[i]);
            return;
        }
        if (n > 1) {
            PyObject* second = PyTuple_GET_ITEM(cmd, 1);
            if (PyBytes_Check(second)) {
                c.field1_bytes = true;
                if (PyBytes_GET_SIZE(second) == 20) {
                    std::memcpy(c.key2.data(), PyBytes_AS_STRING(second), 20);
                    c.key2_ok = true;
                }
            }
        }
        if (c.tag == T_BUILDER_ORDER) {
            // into PlaceOrder's layout: fields 7.. move to 5..; the builder (5) is key2, its
            // fee (6) v[12]
            Cmd raw;
            for (Py_ssize_t i = 1; i < n && i < 14; ++i) decode_int(raw, (int)i, PyTuple_GET_ITEM(cmd, i));
            PyObject* builder = PyTuple_GET_ITEM(cmd, 5);
            c.key2_ok = PyBytes_Check(builder) && PyBytes_GET_SIZE(builder) == 20;
            if (c.key2_ok) std::memcpy(c.key2.data(), PyBytes_AS_STRING(builder), 20);
            c.builder_layout = true;
            decode_client(raw, 10, PyTuple_GET_ITEM(cmd, 10));
            c.client = raw.client;
            c.client_too_big = raw.client_too_big;
            for (int i = 1; i < 13; ++i) {
                int from = i < 5 ? i : (i == 12 ? 6 : i + 2);
                c.v[i] = raw.v[from];
                uint32_t bit = 1u << from, to = 1u << i;
                if (raw.exact & bit) c.exact |= to;
                if (raw.intlike & bit) c.intlike |= to;
                if (raw.overflow & bit) c.overflow |= to;
                if (raw.truthy & bit) c.truthy |= to;
            }
            return;
        }
        if (c.tag == T_COMMITTEE_BLOCK) decode_int(c, 0, PyTuple_GET_ITEM(cmd, 0));
        for (Py_ssize_t i = 1; i < n && i < 12; ++i) decode_int(c, (int)i, PyTuple_GET_ITEM(cmd, i));
        if (c.tag == T_PLACE) decode_client(c, 8, PyTuple_GET_ITEM(cmd, 8));
        if (c.tag == T_CANCEL_CLIENT) decode_client(c, 2, PyTuple_GET_ITEM(cmd, 2));
    }

    // A client id as its 128 bits, unsigned (a Hyperliquid cloid is any 128-bit value, so the
    // top half of the range is stored as negative __int128s; ``client_to_py`` undoes it).
    // A negative client id, which no edge produces, is refused rather than folded onto one.
    static void decode_client(Cmd& c, int field, PyObject* item) {
        c.client = c.v[field];
        if (!(c.intlike >> field & 1)) return;
        if (!c.is_big(field)) {
            if (c.v[field] < 0) c.client_too_big = true;
            return;
        }
        PyObject* shift = PyLong_FromLong(64);
        PyObject* high = PyNumber_Rshift(item, shift);
        unsigned long long hi = high ? PyLong_AsUnsignedLongLong(high) : 0;
        if (!high || PyErr_Occurred()) {
            PyErr_Clear();
            c.client_too_big = true;  // negative, or 2^128 and beyond
        } else {
            unsigned long long lo = PyLong_AsUnsignedLongLongMask(item);
            c.client = (i128)((unsigned __int128)hi << 64 | lo);
        }
        Py_XDECREF(high);
        Py_DECREF(shift);
    }

    // a command's items (``[tag, field, ...]``) into a Cmd, as ``decode`` does for objects
    void decode_items(const MValue& m, Cmd& c) {
        if (m.kind != MValue::ARRAY || m.items.empty() || m.items[0].kind != MValue::INT)
            throw Unsupported("a journal record that is not a command");
        c.tag = (int)m.items[0].v;
        if (c.tag < 0 || c.tag >= N_TAGS) throw Unsupported("an unknown command tag");
        const std::vector<MValue>& f = m.items;  // f[i + 1] is field i
        size_t n = f.size() - 1;
        // field 0 names the account (or signer, publisher): one of another length has no
        // native identity, so it is refused; an agent or builder (field 1) of another length
        // is simply not a valid one, as the reference finds
        auto address = [&](size_t i, Key& key, bool& ok) {
            const MValue& v = f[i + 1];
            if (v.kind != MValue::BYTES) return false;
            if (v.len != 20) {
                if (i == 0) throw Unsupported("an address that is not 20 bytes");
                return true;
            }
            std::memcpy(key.data(), v.data, 20);
            ok = true;
            return true;
        };
        auto number = [&](Cmd& into, int i, const MValue& v) {
            uint32_t bit = 1u << i;
            if (v.kind == MValue::INT) {
                into.v[i] = v.v;
                into.intlike |= bit;
                into.exact |= bit;
                if (v.v) into.truthy |= bit;
            } else if (v.kind == MValue::BOOL) {
                into.v[i] = v.v;
                into.intlike |= bit;
                if (v.v) into.truthy |= bit;
            } else if (v.kind == MValue::BIG) {
                into.v[i] = v.negative ? INT64_MIN : INT64_MAX;
                into.intlike |= bit;
                into.exact |= bit;
                into.overflow |= bit;
                into.truthy |= bit;
            } else if (v.kind == MValue::BYTES) {
                if (v.len) into.truthy |= bit;
            }
        };
        auto client = [&](Cmd& into, int i, const MValue& v) {
            into.client = into.v[i];
            if (v.kind == MValue::INT && v.v < 0) into.client_too_big = true;
            if (v.kind == MValue::BIG) {
                if (v.big_fits)
                    into.client = (i128)v.big;
                else
                    into.client_too_big = true;
            }
        };
        if (n >= 1) address(0, c.key, c.key_ok);
        if (c.tag == T_PROTECTIVE) {
            if (n >= 1 && f[1].kind == MValue::BOOL) {
                c.exact |= 1;
                if (f[1].v) c.truthy |= 1;
            }
            return;
        }
        if (c.tag == T_SIGNED) {
            if (n != 4) throw Unsupported("a Signed record of the wrong shape");
            number(c, 1, f[2]);
            number(c, 2, f[3]);
            c.inner = std::make_shared<std::vector<Cmd>>(1);
            decode_items(f[4], (*c.inner)[0]);
            return;
        }
        if (c.tag == T_BATCH) {
            if (n != 2 || f[2].kind != MValue::ARRAY) throw Unsupported("a Batch of the wrong shape");
            c.inner = std::make_shared<std::vector<Cmd>>(f[2].items.size());
            for (size_t i = 0; i < f[2].items.size(); ++i) decode_items(f[2].items[i], (*c.inner)[i]);
            return;
        }
        if (n >= 2 && f[2].kind == MValue::BYTES) {
            c.field1_bytes = true;
            address(1, c.key2, c.key2_ok);
        }
        if (c.tag == T_LEVERAGE && !(n >= 4 && f[4].kind == MValue::BOOL))
            throw Unsupported("an isolated flag that is not a bool");
        if (c.tag == T_COMMITTEE_BLOCK) {
            number(c, 0, f[1]);
            if (n >= 3 && f[3].kind == MValue::BIG) throw Unsupported("a signer bitmap beyond int64");
        }
        if (c.tag == T_BUILDER_ORDER) {
            Cmd raw;
            for (size_t i = 1; i < n && i < 14; ++i) number(raw, (int)i, f[i + 1]);
            if (n > 10) client(raw, 10, f[11]);
            c.key2_ok = false;
            if (n > 5 && f[6].kind == MValue::BYTES && f[6].len == 20) {
                std::memcpy(c.key2.data(), f[6].data, 20);
                c.key2_ok = true;
            }
            c.client = raw.client;
            c.client_too_big = raw.client_too_big;
            c.builder_layout = true;
            for (int i = 1; i < 13; ++i) {
                int from = i < 5 ? i : (i == 12 ? 6 : i + 2);
                c.v[i] = raw.v[from];
                uint32_t bit = 1u << from, to = 1u << i;
                if (raw.exact & bit) c.exact |= to;
                if (raw.intlike & bit) c.intlike |= to;
                if (raw.overflow & bit) c.overflow |= to;
                if (raw.truthy & bit) c.truthy |= to;
            }
            return;
        }
        for (size_t i = 1; i < n && i < 12; ++i) number(c, (int)i, f[i + 1]);
        if (c.tag == T_PLACE && n > 8) client(c, 8, f[9]);
        if (c.tag == T_CANCEL_CLIENT && n > 2) client(c, 2, f[3]);
    }

    // Replay: apply trusted journal payloads (``pack([timestamp, command_items, signature])``,
    // checksummed by the journal) straight from their bytes, building no Python objects;
    // returns how many were applied. The events are not built (replay discards them).
    i64 apply_records(py::list payloads) {
        core.out = nullptr;
        i64 applied = 0;
        for (py::handle item : payloads) {
            PyObject* o = item.ptr();
            if (!PyBytes_Check(o)) throw Unsupported("a journal payload that is not bytes");
            MReader reader{(const uint8_t*)PyBytes_AS_STRING(o),
                           (const uint8_t*)PyBytes_AS_STRING(o) + PyBytes_GET_SIZE(o)};
            MValue record;
            reader.read(record);
            if (record.kind != MValue::ARRAY || record.items.size() != 3 ||
                record.items[0].kind != MValue::INT || record.items[0].v < 0)
                throw Unsupported("a journal record of the wrong shape");
            Cmd c;
            decode_items(record.items[1], c);
            core.apply(c, record.items[0].v);
            ++applied;
        }
        return applied;
    }

    // Replay's fast path over one journal segment's bytes, from ``pos`` (after the segment
    // header) where seq ``expected`` is due: each record's framing, checksum and seq checked
    // as the journal reader checks them, the ones from ``from_seq`` applied, up to
    // ``last``. Returns (pos, expected, applied, status): 0 the segment ended cleanly, 1
    // ``last`` was reached, 2 anything else (torn or damaged): the caller then replays
    // through the exact reader, which reports what it finds.
    py::tuple replay_segment(py::bytes data, size_t pos, i64 expected, i64 from_seq, i64 last) {
        core.out = nullptr;
        const uint8_t* base = (const uint8_t*)PyBytes_AS_STRING(data.ptr());
        size_t size = (size_t)PyBytes_GET_SIZE(data.ptr());
        i64 applied = 0;
        int status = 0;
        while (pos < size) {
            size_t end = clean_record_end(base, size, pos, expected);
            if (end == 0) {
                status = 2;
                break;
            }
            if (expected > last) {  // the record's seq is ``expected``
                status = 1;
                break;
            }
            if (expected >= from_seq) {
                MReader reader{base + pos + RECORD_HEADER_BYTES, base + end};
                MValue record;
                reader.read(record);
                if (record.kind != MValue::ARRAY || record.items.size() != 3 ||
                    record.items[0].kind != MValue::INT || record.items[0].v < 0)
                    throw Unsupported("a journal record of the wrong shape");
                Cmd c;
                decode_items(record.items[1], c);
                core.apply(c, record.items[0].v);
                ++applied;
            }
            ++expected;
            pos = end;
        }
        return py::make_tuple(pos, expected, applied, status);
    }

    void set_committee(i64 share_ppm, py::list members) {
        core.committee_share_ppm = share_ppm;
        for (py::handle member : members) {
            PyObject* o = member.ptr();
            if (!PyBytes_Check(o) || PyBytes_GET_SIZE(o) != 20)
                throw Unsupported("a committee member that is not a 20-byte address");
            Key key;
            std::memcpy(key.data(), PyBytes_AS_STRING(o), 20);
            core.committee_members.push_back(key);
            Py_INCREF(o);
            core.committee_addresses.push_back(o);
        }
    }

    py::list apply(py::handle command, py::handle timestamp) {
        Cmd c;
        decode(command.ptr(), c);
        int overflow = 0;
        long long ts = PyLong_AsLongLongAndOverflow(timestamp.ptr(), &overflow);
        if (overflow || ts < 0) throw Unsupported("a timestamp beyond int64");
        py::list events;
        core.out = events.ptr();
        try {
            core.apply(c, ts);
        } catch (...) {
            core.out = nullptr;
            throw;
        }
        core.out = nullptr;
        return events;
    }

    // Apply a list of commands at ``clock >> 6``, ``clock`` counting up from ``clock_start``
    // (the benchmark's timestamps), building no event objects: the batch entry point.
    // Returns (events, elapsed ns); with ``samples`` each command's ns are appended to it.
    py::tuple run_stream(py::list commands, i64 clock_start, bool latency) {
        std::vector<Cmd> decoded(commands.size());
        for (size_t i = 0; i < decoded.size(); ++i) {
            Cmd& c = decoded[i];
            decode(commands[i].ptr(), c);
            // pre-encoding: the account's id, if it exists now (re-checked when applied)
            if (c.key_ok) {
                auto it = core.account_ids.find(c.key);
                if (it != core.account_ids.end()) c.account_hint = it->second;
            }
        }
        core.out = nullptr;
        core.event_count = 0;
        i64 clock = clock_start;
        std::vector<int64_t> samples;
        timespec cpu0{}, cpu1{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
        auto start = std::chrono::steady_clock::now();
        if (latency) {
            samples.reserve(decoded.size());
            for (const Cmd& c : decoded) {
                ++clock;
                auto t0 = std::chrono::steady_clock::now();
                core.apply(c, clock >> 6);
                samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::steady_clock::now() - t0)
                                      .count());
            }
        } else {
            // the next commands' account, positions and named order are fetched into the
            // cache while this one runs: the state is larger than the cache, so most of a
            // command's time is otherwise spent waiting for memory
            size_t n = decoded.size();
            for (size_t i = 0; i < n; ++i) {
                if (i + 6 < n) prefetch_first(decoded[i + 6]);
                if (i + 3 < n) prefetch(decoded[i + 3]);
                ++clock;
                core.apply(decoded[i], clock >> 6);
            }
        }
        auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
        int64_t cpu = (cpu1.tv_sec - cpu0.tv_sec) * 1000000000LL + (cpu1.tv_nsec - cpu0.tv_nsec);
        py::list out;
        if (latency) {
            std::sort(samples.begin(), samples.end());
            for (int64_t s : samples) out.append(s);
        }
        return py::make_tuple(core.event_count, elapsed, out, cpu);
    }

    // two stages: first what needs no other load (the account, the order's index entry),
    // then what those name (the account's positions, the order)
    void prefetch_first(const Cmd& c) {
        int32_t a = c.account_hint;
        if (a >= 0 && (size_t)a < core.accounts.size()) __builtin_prefetch(&core.accounts[a]);
        if ((c.tag == T_MODIFY || c.tag == T_CANCEL) && c.v[2] > 0 &&
            c.v[2] < (i64)core.id_slot.size())
            __builtin_prefetch(&core.id_slot[c.v[2]]);
    }

    void prefetch(const Cmd& c) {
        int32_t a = c.account_hint;
        if (a >= 0 && (size_t)a < core.accounts.size()) {
            size_t M = core.markets.size();
            if (M <= 64) {
                for (uint64_t mask = core.accounts[a].held_mask; mask; mask &= mask - 1)
                    __builtin_prefetch(&core.pos(a, (size_t)__builtin_ctzll(mask)));
            }
            size_t m = (c.tag == T_PLACE || c.tag == T_MODIFY || c.tag == T_CANCEL) ? c.v[1] : 0;
            if (m < M) __builtin_prefetch(&core.pos(a, m));
        }
        if ((c.tag == T_MODIFY || c.tag == T_CANCEL) && c.v[2] > 0 &&
            c.v[2] < (i64)core.id_slot.size()) {
            int32_t slot = core.id_slot[c.v[2]];
            if (slot >= 0) __builtin_prefetch(&core.orders[slot]);
        }
    }

    // ---------------------------------------------------------------- export

    // The state as plain Python values, whole (``export_state``, for building the reference's
    // State and so its root and snapshots: asyncdex.engine.native.to_reference_state) or one
    // piece at a time (the read queries below, for the read side's views: an account, an
    // order, a market, a signer's nonces), each piece in the form ``export_state`` gives it.
    static py::object big(i128 v) { return py::reinterpret_steal<py::object>(to_py(v)); }

    py::list order_list(const Order& o) const {
        const Core& k = core;
        py::list l;
        l.append(o.order_id);
        l.append(py::reinterpret_borrow<py::object>(k.accounts[o.account].address));
        l.append((int)o.market);
        l.append((bool)o.is_buy);
        l.append(o.price);
        l.append(o.size);
        l.append(o.orig_size);
        l.append((int)o.tif);
        l.append((bool)o.reduce_only);
        l.append(py::reinterpret_steal<py::object>(client_to_py(o.client_id)));
        l.append(o.expiry);
        l.append(o.timestamp);
        l.append((int)o.trigger_kind);
        l.append(o.trigger_price);
        l.append((int)o.order_type);
        if (o.builder >= 0) {
            l.append(py::reinterpret_borrow<py::object>(k.accounts[o.builder].address));
            l.append(o.builder_fee);
        }
        return l;
    }

    py::dict market_dict(const Market& m, bool with_book = true) const {
        const Core& k = core;
        py::dict md;
        py::list scalars;
        scalars.append(m.index_price);
        scalars.append(m.mark_price);
        scalars.append(big(m.premium_sum));
        scalars.append(m.premium_count);
        scalars.append(m.next_sample);
        scalars.append(m.next_funding);
        scalars.append(big(m.cumulative_funding));
        scalars.append(m.funding_rate_ppb);
        if (m.spec.auction_interval_ms) scalars.append(m.next_auction);
        md["scalars"] = scalars;
        py::list oracle;
        for (const Oracle& o : m.oracle)
            oracle.append(
                py::make_tuple(py::reinterpret_borrow<py::object>(o.obj), o.price, o.time));
        md["oracle"] = oracle;
        if (with_book) {
            py::list book;  // bids best first, then asks best first, time order in a level
            for (const Side* s : {&m.bids, &m.asks})
                for (size_t i = s->levels.size(); i-- > 0;)
                    for (int32_t slot = s->levels[i].head; slot >= 0; slot = k.orders[slot].next)
                        book.append(order_list(k.orders[slot]));
            md["book"] = book;
        }
        py::list triggers;
        for (int32_t slot : m.triggers) triggers.append(order_list(k.orders[slot]));
        md["triggers"] = triggers;
        return md;
    }

    py::tuple account_tuple(size_t a) const {
        const Core& k = core;
        const Account& acc = k.accounts[a];
        size_t M = k.markets.size();
        py::list positions;
        for (size_t m = 0; m < M; ++m) {
            const Position& p = k.positions[a * M + m];
            if (!p.exists) continue;
            py::list scalars;
            scalars.append(p.size);
            scalars.append(big(p.entry_notional));
            scalars.append(big(p.iso_margin));
            scalars.append(p.open_buy);
            scalars.append(p.open_sell);
            scalars.append(p.leverage);
            scalars.append(p.isolated);
            scalars.append(big(p.cum_funding));
            py::list ids;
            for (int32_t slot = p.ohead; slot >= 0; slot = k.orders[slot].pnext)
                ids.append(k.orders[slot].order_id);
            positions.append(py::make_tuple(m, scalars, ids));
        }
        py::list agents, builders;
        for (const auto& item : acc.agents)
            agents.append(
                py::make_tuple(py::bytes((const char*)item.first.data(), 20), item.second));
        for (const auto& item : acc.builders)
            builders.append(
                py::make_tuple(py::bytes((const char*)item.first.data(), 20), item.second));
        return py::make_tuple(py::reinterpret_borrow<py::object>(acc.address),
                              big(acc.collateral), acc.scheduled_cancel, positions, agents,
                              builders);
    }

    // The scalars of ``export_state`` (no containers) and the sizes of the containers.
    py::dict export_header() const {
        const Core& k = core;
        py::dict d;
        d["time"] = k.time;
        d["next_due"] = k.next_due;
        d["next_order_id"] = k.next_order_id;
        d["next_withdrawal_id"] = k.next_withdrawal_id;
        d["l1_consumed"] = k.l1_consumed;
        d["insurance_fund"] = big(k.insurance_fund);
        d["fee_pool"] = big(k.fee_pool);
        d["total_deposited"] = big(k.total_deposited);
        d["total_withdrawn"] = big(k.total_withdrawn);
        d["protective"] = k.protective;
        d["committee"] =
            py::make_tuple(big(k.committee_pool), big(k.committee_fee_mark), k.committee_proposer);
        d["accounts"] = k.accounts.size();
        d["orders"] = k.live_orders;
        return d;
    }

    py::dict export_state() {
        Core& k = core;
        py::dict d = export_header();
        d.attr("pop")("accounts");
        d.attr("pop")("orders");
        py::list markets;
        for (const Market& m : k.markets) markets.append(market_dict(m));
        d["markets"] = markets;
        py::list accounts;
        for (size_t a = 0; a < k.accounts.size(); ++a) accounts.append(account_tuple(a));
        d["accounts"] = accounts;
        py::list heap;
        auto copy = k.expiries;
        while (!copy.empty()) {
            heap.append(py::make_tuple(copy.top().first, copy.top().second));
            copy.pop();
        }
        d["expiries"] = heap;
        py::list nonces;
        for (const std::string& signer : k.nonce_order) {
            py::list kept;
            for (i64 n : k.nonces.at(signer)) kept.append(n);
            nonces.append(py::make_tuple(py::bytes(signer), kept));
        }
        d["nonces"] = nonces;
        py::list dead_man;
        auto pending = k.scheduled;
        while (!pending.empty()) {
            const Key& key = pending.top().second;
            dead_man.append(py::make_tuple(
                pending.top().first, py::bytes((const char*)key.data(), key.size())));
            pending.pop();
        }
        d["scheduled"] = dead_man;
        return d;
    }

    // ---------------------------------------------------------------- read queries

    int32_t account_id(const py::bytes& address) const {
        std::string raw = address;
        if (raw.size() != 20) return -1;
        Key key;
        std::memcpy(key.data(), raw.data(), 20);
        auto it = core.account_ids.find(key);
        return it == core.account_ids.end() ? -1 : it->second;
    }

    // One market as ``export_state`` gives it (without its book: ``book_side`` and
    // ``book_levels`` read that), with its holders (accounts with a position).
    py::dict export_market(size_t market) const {
        if (market >= core.markets.size()) throw py::index_error("no such market");
        const Market& m = core.markets[market];
        py::dict md = market_dict(m, false);
        py::list holders;
        for (int32_t a : m.holders)
            holders.append(py::reinterpret_borrow<py::object>(core.accounts[a].address));
        md["holders"] = holders;
        return md;
    }

    // (account as ``export_state`` gives it, its live orders' lists), or None.
    py::object export_account(const py::bytes& address) const {
        int32_t a = account_id(address);
        if (a < 0) return py::none();
        const Core& k = core;
        size_t M = k.markets.size();
        py::list orders;
        for (size_t m = 0; m < M; ++m) {
            const Position& p = k.positions[(size_t)a * M + m];
            if (!p.exists) continue;
            for (int32_t slot = p.ohead; slot >= 0; slot = k.orders[slot].pnext)
                orders.append(order_list(k.orders[slot]));
        }
        return py::make_tuple(account_tuple((size_t)a), orders);
    }

    bool has_account(const py::bytes& address) const { return account_id(address) >= 0; }

    // (size, entry notional) of an account's position in a market, or None without one.
    py::object position_values(const py::bytes& address, size_t market) const {
        int32_t a = account_id(address);
        if (a < 0 || market >= core.markets.size()) return py::none();
        const Position& p = core.positions[(size_t)a * core.markets.size() + market];
        if (!p.exists) return py::none();
        return py::make_tuple(p.size, big(p.entry_notional));
    }

    const Side& side_of(size_t market, bool is_buy) const {
        if (market >= core.markets.size()) throw py::index_error("no such market");
        const Market& m = core.markets[market];
        return is_buy ? m.bids : m.asks;
    }

    // The best price of each side (None when empty).
    py::tuple book_best(size_t market) const {
        const Side& bids = side_of(market, true);
        const Side& asks = side_of(market, false);
        py::object bid = bids.empty() ? py::none() : py::object(py::int_(bids.best()));
        py::object ask = asks.empty() ? py::none() : py::object(py::int_(asks.best()));
        return py::make_tuple(bid, ask);
    }

    // The best ``depth`` levels of one side as (price, total size, order count), best first.
    py::list book_levels(size_t market, bool is_buy, size_t depth) const {
        const Side& side = side_of(market, is_buy);
        py::list out;
        for (size_t i = side.levels.size(); i-- > 0 && out.size() < depth;) {
            i64 total = 0, count = 0;
            for (int32_t slot = side.levels[i].head; slot >= 0; slot = core.orders[slot].next) {
                total += core.orders[slot].size;
                ++count;
            }
            out.append(py::make_tuple(side.levels[i].price, total, count));
        }
        return out;
    }

    // Every order of one side, best level first, time order within a level.
    py::list book_side(size_t market, bool is_buy) const {
        const Side& side = side_of(market, is_buy);
        py::list out;
        for (size_t i = side.levels.size(); i-- > 0;)
            for (int32_t slot = side.levels[i].head; slot >= 0; slot = core.orders[slot].next)
                out.append(order_list(core.orders[slot]));
        return out;
    }

    py::list account_addresses() const {
        py::list out;
        for (const Account& acc : core.accounts)
            out.append(py::reinterpret_borrow<py::object>(acc.address));
        return out;
    }

    py::object export_order(i64 order_id) {
        const Order* o = core.live_order(order_id);
        return o ? py::object(order_list(*o)) : py::none();
    }

    py::list order_ids() const {
        py::list out;
        for (size_t id = 0; id < core.id_slot.size(); ++id)
            if (core.id_slot[id] >= 0) out.append(id);
        return out;
    }

    py::object nonces_of(const py::bytes& signer) const {
        auto it = core.nonces.find(std::string(signer));
        if (it == core.nonces.end()) return py::none();
        py::list kept;
        for (i64 n : it->second) kept.append(n);
        return kept;
    }

    py::list nonce_signers() const {
        py::list out;
        for (const std::string& signer : core.nonce_order) out.append(py::bytes(signer));
        return out;
    }

    py::object agent_master_of(const py::bytes& agent) const {
        std::string raw = agent;
        if (raw.size() != 20) return py::none();
        Key key;
        std::memcpy(key.data(), raw.data(), 20);
        auto it = core.agent_master.find(key);
        if (it == core.agent_master.end()) return py::none();
        return py::reinterpret_borrow<py::object>(core.accounts[it->second].address);
    }

    py::list agents() const {
        py::list out;
        for (const Account& acc : core.accounts)
            for (const auto& item : acc.agents)
                out.append(py::make_tuple(py::bytes((const char*)item.first.data(), 20),
                                          py::reinterpret_borrow<py::object>(acc.address)));
        return out;
    }

    // The inverse of ``export_state``: load a whole state (a fresh core only), from what
    // asyncdex.engine.native.export_reference_state makes of a reference ``State``.
    void import_state(py::dict d) {
        Core& k = core;
        if (!k.accounts.empty() || k.next_order_id != 1)
            throw std::invalid_argument("a state can only be loaded into a fresh native engine");
        auto i64o = [](py::handle o) -> i64 {
            i128 v = from_py128(o.ptr());
            if (v > INT64_MAX || v < INT64_MIN) throw Unsupported("a state value beyond int64");
            return (i64)v;
        };
        auto i128o = [](py::handle o) { return from_py128(o.ptr()); };
        auto key_of = [](py::handle o) {
            std::string raw = o.cast<std::string>();
            if (raw.size() != 20) throw Unsupported("an address that is not 20 bytes");
            Key key;
            std::memcpy(key.data(), raw.data(), 20);
            return key;
        };
        k.time = i64o(d["time"]);
        k.next_due = i64o(d["next_due"]);
        k.next_order_id = i64o(d["next_order_id"]);
        k.next_withdrawal_id = i64o(d["next_withdrawal_id"]);
        k.l1_consumed = i64o(d["l1_consumed"]);
        k.insurance_fund = i128o(d["insurance_fund"]);
        k.fee_pool = i128o(d["fee_pool"]);
        k.total_deposited = i128o(d["total_deposited"]);
        k.total_withdrawn = i128o(d["total_withdrawn"]);
        k.protective = d["protective"].cast<bool>();
        py::tuple committee = d["committee"];
        k.committee_pool = i128o(committee[0]);
        k.committee_fee_mark = i128o(committee[1]);
        k.committee_proposer = i64o(committee[2]);
        // accounts first: orders name their owners and builders
        py::list accounts = d["accounts"];
        for (py::handle item : accounts) {
            py::tuple a = py::reinterpret_borrow<py::tuple>(item);
            Key key = key_of(a[0]);
            int32_t id = k.create_account(key, a[0].ptr());
            Account& acc = k.accounts[id];
            acc.collateral = i128o(a[1]);
            acc.scheduled_cancel = i64o(a[2]);
            for (py::handle agent : py::reinterpret_borrow<py::list>(a[4])) {
                py::tuple pair = py::reinterpret_borrow<py::tuple>(agent);
                Key agent_key = key_of(pair[0]);
                acc.agents.emplace_back(agent_key, i64o(pair[1]));
                k.agent_master[agent_key] = id;
            }
            for (py::handle builder : py::reinterpret_borrow<py::list>(a[5])) {
                py::tuple pair = py::reinterpret_borrow<py::tuple>(builder);
                acc.builders.emplace_back(key_of(pair[0]), i64o(pair[1]));
            }
        }
        for (py::handle item : accounts) {
            py::tuple a = py::reinterpret_borrow<py::tuple>(item);
            int32_t id = k.account_ids.at(key_of(a[0]));
            for (py::handle entry : py::reinterpret_borrow<py::list>(a[3])) {
                py::tuple pos = py::reinterpret_borrow<py::tuple>(entry);
                size_t market = pos[0].cast<size_t>();
                if (market >= k.markets.size()) throw std::invalid_argument("unknown market");
                py::list v = pos[1];
                Position& p = k.pos(id, market);
                k.reset_position(p, k.markets[market]);
                p.size = i64o(v[0]);
                p.entry_notional = i128o(v[1]);
                p.iso_margin = i128o(v[2]);
                p.open_buy = i64o(v[3]);
                p.open_sell = i64o(v[4]);
                p.leverage = i64o(v[5]);
                p.isolated = v[6].cast<bool>();
                p.cum_funding = i128o(v[7]);
                p.imf = Core::initial_fraction(k.markets[market].spec.initial_margin_ppm, p.leverage);
                k.set_exists(id, market, p, true);
                if (p.size) {
                    p.holder_at = (int32_t)k.markets[market].holders.size();
                    k.markets[market].holders.push_back(id);
                }
            }
        }
        auto load_order = [&](py::handle item, bool armed) {
            py::list l = py::reinterpret_borrow<py::list>(item);
            Order o;
            o.order_id = i64o(l[0]);
            o.account = k.account_ids.at(key_of(l[1]));
            o.market = (int16_t)l[2].cast<int>();
            o.is_buy = l[3].cast<bool>();
            o.price = i64o(l[4]);
            o.size = i64o(l[5]);
            o.orig_size = i64o(l[6]);
            o.tif = (uint8_t)l[7].cast<int>();
            o.reduce_only = l[8].cast<bool>();
            {
                Cmd tmp;
                decode_int(tmp, 9, l[9].ptr());
                decode_client(tmp, 9, l[9].ptr());
                if (tmp.client_too_big) throw Unsupported("a client id outside 0..2^128");
                o.client_id = tmp.client;
            }
            o.expiry = i64o(l[10]);
            o.timestamp = i64o(l[11]);
            o.trigger_kind = (uint8_t)l[12].cast<int>();
            o.trigger_price = i64o(l[13]);
            o.order_type = (uint8_t)l[14].cast<int>();
            o.builder = l.size() > 15 ? k.account_ids.at(key_of(l[15])) : -1;
            o.builder_fee = l.size() > 15 ? (int32_t)i64o(l[16]) : 0;
            o.prev = o.next = o.pprev = o.pnext = -1;
            if ((bool)o.trigger_kind != armed) throw std::invalid_argument("a trigger out of place");
            int32_t slot = k.alloc_order(o);
            Market& m = k.markets[o.market];
            if (armed)
                m.triggers.push_back(slot);
            else
                k.book_add(m, slot);
            k.position_link(k.pos(o.account, o.market), slot);
            ++k.accounts[o.account].open_orders;
            ++k.live_orders;
            if (o.client_id) k.client_ids[Core::client_key(o.account, o.client_id)] = o.order_id;
        };
        py::list markets = d["markets"];
        if (markets.size() != k.markets.size()) throw std::invalid_argument("markets differ");
        for (size_t i = 0; i < k.markets.size(); ++i) {
            Market& m = k.markets[i];
            py::dict md = markets[i];
            py::list v = md["scalars"];
            m.index_price = i64o(v[0]);
            m.mark_price = i64o(v[1]);
            k.marks[i] = m.mark_price;
            m.premium_sum = i128o(v[2]);
            m.premium_count = i64o(v[3]);
            m.next_sample = i64o(v[4]);
            m.next_funding = i64o(v[5]);
            m.cumulative_funding = i128o(v[6]);
            m.funding_rate_ppb = i64o(v[7]);
            if (m.spec.auction_interval_ms) m.next_auction = i64o(v[8]);
            for (py::handle item : py::reinterpret_borrow<py::list>(md["oracle"])) {
                py::tuple t = py::reinterpret_borrow<py::tuple>(item);
                PyObject* publisher = t[0].ptr();
                Py_INCREF(publisher);
                m.oracle.push_back(Oracle{t[0].cast<std::string>(), publisher, i64o(t[1]), i64o(t[2])});
            }
            for (py::handle item : py::reinterpret_borrow<py::list>(md["book"])) load_order(item, false);
            for (py::handle item : py::reinterpret_borrow<py::list>(md["triggers"])) load_order(item, true);
        }
        for (py::handle item : py::reinterpret_borrow<py::list>(d["expiries"])) {
            py::tuple t = py::reinterpret_borrow<py::tuple>(item);
            k.expiries.emplace(i64o(t[0]), i64o(t[1]));
        }
        for (py::handle item : py::reinterpret_borrow<py::list>(d["scheduled"])) {
            py::tuple t = py::reinterpret_borrow<py::tuple>(item);
            k.scheduled.emplace(i64o(t[0]), key_of(t[1]));
        }
        for (py::handle item : py::reinterpret_borrow<py::list>(d["nonces"])) {
            py::tuple t = py::reinterpret_borrow<py::tuple>(item);
            std::string signer = t[0].cast<std::string>();
            std::vector<i64> kept;
            for (py::handle n : py::reinterpret_borrow<py::list>(t[1])) kept.push_back(i64o(n));
            k.nonces.emplace(signer, kept);
            k.nonce_order.push_back(signer);
        }
    }

    // Native bytes held for resting orders and the book (for the memory benchmark)
    py::dict memory() {
        Core& k = core;
        size_t levels = 0;
        for (const Market& m : k.markets)
            levels += (m.bids.levels.capacity() + m.asks.levels.capacity()) * sizeof(Level);
        py::dict d;
        d["orders"] = k.orders.capacity() * sizeof(Order);
        d["id_index"] = k.id_slot.capacity() * sizeof(int32_t);
        d["levels"] = levels;
        d["client_ids"] = k.client_ids.size() * (sizeof(ClientKey) + sizeof(i64) + 16);
        d["live_orders"] = k.live_orders;
        d["order_size"] = sizeof(Order);
        return d;
    }
};

// The journal's record check over a segment image from ``pos`` (the record expected to carry
// seq ``expected``): every record whose framing, CRC-32 and seq are right, up to the first
// that is not (or the end). Returns (pos, expected) after the last clean record; the caller
// (asyncdex.sequencer.journal) says what is wrong there, if anything.
py::tuple scan_records(py::bytes data, size_t pos, i64 expected) {
    const uint8_t* base = (const uint8_t*)PyBytes_AS_STRING(data.ptr());
    size_t size = (size_t)PyBytes_GET_SIZE(data.ptr());
    {
        py::gil_scoped_release unlocked;  // bytes are immutable: other threads may run
        while (size_t end = clean_record_end(base, size, pos, expected)) {
            ++expected;
            pos = end;
        }
    }
    return py::make_tuple(pos, expected);
}

}  // namespace

PYBIND11_MODULE(_native_core, m) {
    m.doc() = "The native engine core (see asyncdex.engine.native).";
    py::register_exception<Unsupported>(m, "NativeUnsupported", PyExc_NotImplementedError);
    py::class_<PyCore>(m, "Core")
        .def(py::init<py::list, py::list, i64, py::tuple, py::tuple>())
        .def("apply", &PyCore::apply)
        .def("run_stream", &PyCore::run_stream, py::arg("commands"), py::arg("clock_start"),
             py::arg("latency") = false)
        .def("export_state", &PyCore::export_state)
        .def("export_header", &PyCore::export_header)
        .def("export_market", &PyCore::export_market)
        .def("export_account", &PyCore::export_account)
        .def("has_account", &PyCore::has_account)
        .def("position_values", &PyCore::position_values)
        .def("book_best", &PyCore::book_best)
        .def("book_levels", &PyCore::book_levels)
        .def("book_side", &PyCore::book_side)
        .def("account_addresses", &PyCore::account_addresses)
        .def("export_order", &PyCore::export_order)
        .def("order_ids", &PyCore::order_ids)
        .def("nonces_of", &PyCore::nonces_of)
        .def("nonce_signers", &PyCore::nonce_signers)
        .def("agent_master_of", &PyCore::agent_master_of)
        .def("agents", &PyCore::agents)
        .def("set_committee", &PyCore::set_committee)
        .def("import_state", &PyCore::import_state)
        .def("apply_records", &PyCore::apply_records)
        .def("replay_segment", &PyCore::replay_segment)
        .def("memory", &PyCore::memory);
    m.def("scan_records", &scan_records);
}
