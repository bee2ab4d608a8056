"""The order book alone: price-time priority, removal, level bookkeeping, invariant checks.

The book knows nothing of matching or margin; these tests drive ``add``/``remove`` directly.
A model-based test runs random adds and removes against a plain list of orders sorted by
(price priority, arrival) and compares every read after every step.
"""

from __future__ import annotations

from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncdex.engine.orderbook import BUILDER_FIELDS, ORDER_FIELDS, Book, Order

ALICE = b"\xa1" * 20
BOB = b"\xb0" * 20

_ids = count(1)


def order(is_buy: bool, price: int, size: int = 10, order_id: int | None = None) -> Order:
    return Order(
        next(_ids) if order_id is None else order_id,
        ALICE,
        0,
        is_buy,
        price,
        size,
        0,  # GTC
        False,
        0,
        0,
        0,
    )


def bid(price: int, size: int = 10) -> Order:
    return order(True, price, size)


def ask(price: int, size: int = 10) -> Order:
    return order(False, price, size)


def ids(orders: list[Order]) -> list[int]:
    return [o.order_id for o in orders]


@pytest.fixture
def book() -> Book:
    return Book(0)


# ------------------------------------------------------------------ priority


def test_empty_book_has_no_best_prices_levels_or_orders(book: Book) -> None:
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert book.level_sizes(True, 5) == []
    assert book.level_sizes(False, 5) == []
    assert book.orders_in_priority() == []
    book.check_invariants()


def test_best_bid_is_the_highest_and_best_ask_the_lowest(book: Book) -> None:
    for price in (100, 102, 101):
        book.add(bid(price))
    for price in (105, 103, 104):
        book.add(ask(price))
    assert (book.best_bid(), book.best_ask()) == (102, 103)
    assert book.bid_prices == [100, 101, 102]
    assert book.ask_prices == [103, 104, 105]
    book.check_invariants()


def test_priority_is_best_price_first_then_arrival_within_a_level(book: Book) -> None:
    first_at_101 = bid(101)
    at_102 = bid(102)
    second_at_101 = bid(101)
    ask_at_104 = ask(104)
    first_at_103 = ask(103)
    second_at_103 = ask(103)
    for o in (first_at_101, at_102, second_at_101, ask_at_104, first_at_103, second_at_103):
        book.add(o)
    assert ids(book.orders_in_priority()) == ids(
        [at_102, first_at_101, second_at_101, first_at_103, second_at_103, ask_at_104]
    )


def test_the_oldest_order_of_a_level_is_its_first(book: Book) -> None:
    orders = [ask(103) for _ in range(4)]
    for o in orders:
        book.add(o)
    assert ids(list(book.asks[103].values())) == ids(orders)


def test_an_order_added_again_after_removal_goes_to_the_back(book: Book) -> None:
    first, second = bid(100), bid(100)
    book.add(first)
    book.add(second)
    book.remove(first)
    book.add(first)
    assert ids(book.orders_in_priority()) == ids([second, first])


# ------------------------------------------------------------------ removal and levels


def test_removing_from_the_middle_keeps_the_others_in_time_order(book: Book) -> None:
    a, b, c = bid(100), bid(100), bid(100)
    for o in (a, b, c):
        book.add(o)
    book.remove(b)
    assert ids(book.orders_in_priority()) == ids([a, c])
    assert book.level_sizes(True, 1) == [(100, 20, 2)]
    book.check_invariants()


def test_removing_the_last_order_of_a_level_drops_the_level(book: Book) -> None:
    lone, other = bid(101), bid(100)
    book.add(lone)
    book.add(other)
    book.remove(lone)
    assert 101 not in book.bids
    assert book.bid_prices == [100]
    assert book.best_bid() == 100
    book.remove(other)
    assert book.bids == {} and book.bid_prices == []
    assert book.best_bid() is None
    book.check_invariants()


def test_removing_an_ask_level_moves_the_best_ask_up(book: Book) -> None:
    best, next_best = ask(103), ask(105)
    book.add(next_best)
    book.add(best)
    book.remove(best)
    assert book.best_ask() == 105
    assert book.ask_prices == [105]


def test_removing_an_order_that_is_not_resting_raises(book: Book) -> None:
    book.add(bid(100))
    with pytest.raises(KeyError):
        book.remove(bid(100))
    with pytest.raises(KeyError):
        book.remove(ask(100))


def test_level_sizes_total_and_count_each_level_best_first(book: Book) -> None:
    book.add(bid(100, 5))
    book.add(bid(100, 7))
    book.add(bid(99, 1))
    book.add(bid(98, 2))
    book.add(ask(101, 3))
    book.add(ask(102, 4))
    book.add(ask(102, 6))
    assert book.level_sizes(True, 10) == [(100, 12, 2), (99, 1, 1), (98, 2, 1)]
    assert book.level_sizes(True, 2) == [(100, 12, 2), (99, 1, 1)]
    assert book.level_sizes(False, 10) == [(101, 3, 1), (102, 10, 2)]
    assert book.level_sizes(False, 0) == []


def test_level_sizes_follow_fills_made_in_place(book: Book) -> None:
    resting = ask(101, 10)
    book.add(resting)
    resting.size -= 4  # the matching code fills in place
    assert book.level_sizes(False, 1) == [(101, 6, 1)]


# ------------------------------------------------------------------ invariants


def test_invariants_catch_a_crossed_book(book: Book) -> None:
    book.add(ask(100))
    book.add(bid(101))
    with pytest.raises(AssertionError, match="crossed"):
        book.check_invariants()


def test_invariants_catch_a_locked_book(book: Book) -> None:
    book.add(ask(100))
    book.add(bid(100))
    with pytest.raises(AssertionError, match="crossed"):
        book.check_invariants()


def test_invariants_accept_one_tick_apart(book: Book) -> None:
    book.add(bid(99))
    book.add(ask(100))
    book.check_invariants()


def test_invariants_catch_a_price_index_out_of_sync(book: Book) -> None:
    book.add(bid(100))
    book.bid_prices.append(101)
    with pytest.raises(AssertionError, match="bid price index"):
        book.check_invariants()


def test_invariants_catch_an_ask_price_index_out_of_sync(book: Book) -> None:
    book.add(ask(100))
    book.ask_prices.clear()
    with pytest.raises(AssertionError, match="ask price index"):
        book.check_invariants()


def test_invariants_catch_an_empty_level_left_behind(book: Book) -> None:
    resting = bid(100)
    book.add(resting)
    del book.bids[100][resting.order_id]
    with pytest.raises(AssertionError, match="empty level"):
        book.check_invariants()


def test_invariants_catch_a_filled_order_left_resting(book: Book) -> None:
    resting = ask(100)
    book.add(resting)
    resting.size = 0
    with pytest.raises(AssertionError):
        book.check_invariants()


def test_invariants_catch_an_order_on_the_wrong_level_or_side(book: Book) -> None:
    moved = bid(100)
    book.add(moved)
    moved.price = 99
    with pytest.raises(AssertionError):
        book.check_invariants()
    moved.price = 100
    moved.is_buy = False
    with pytest.raises(AssertionError):
        book.check_invariants()


# ------------------------------------------------------------------ orders


def test_order_list_form_round_trips_every_field() -> None:
    original = Order(7, BOB, 2, False, 123, 45, 3, True, 99, 1_000, 500, 1, 120, 1)
    original.size = 40  # partly filled: size and orig_size differ
    copy = Order.from_list(original.to_list())
    assert [getattr(copy, f) for f in ORDER_FIELDS] == [getattr(original, f) for f in ORDER_FIELDS]
    assert (copy.size, copy.orig_size) == (40, 45)
    assert len(original.to_list()) == len(ORDER_FIELDS)
    assert len(ORDER_FIELDS) + len(BUILDER_FIELDS) == len(Order.__slots__)


def test_an_order_with_a_builder_keeps_it_in_its_list_form() -> None:
    """Only an order with a builder writes the builder's two fields: one without one is
    written (and committed) exactly as before builder fees."""
    plain = Order(7, BOB, 2, False, 123, 45, 3, True, 99, 1_000, 500, 1, 120, 1)
    coded = Order(7, BOB, 2, False, 123, 45, 3, True, 99, 1_000, 500, 1, 120, 1, b"\xbd" * 20, 7)
    assert coded.to_list() == [*plain.to_list(), b"\xbd" * 20, 7]
    copy = Order.from_list(coded.to_list())
    assert (copy.builder, copy.builder_fee) == (b"\xbd" * 20, 7)
    assert Order.from_list(plain.to_list()).builder == b""


def test_order_from_list_refuses_a_wrong_field_count() -> None:
    with pytest.raises(ValueError):
        Order.from_list(order(True, 100).to_list()[:-1])


# ------------------------------------------------------------------ model-based

# An action is (add a bid / add an ask / remove the n-th resting order).
actions = st.lists(
    st.one_of(
        st.tuples(st.just("bid"), st.integers(90, 100), st.integers(1, 50)),
        st.tuples(st.just("ask"), st.integers(101, 111), st.integers(1, 50)),
        st.tuples(st.just("remove"), st.integers(0, 1_000), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(actions)
def test_book_agrees_with_a_sorted_list_model(steps: list[tuple[str, int, int]]) -> None:
    book = Book(0)
    model: list[Order] = []  # arrival order
    order_ids = count(1)
    for action, value, size in steps:
        if action == "remove":
            if not model:
                continue
            victim = model.pop(value % len(model))
            book.remove(victim)
        else:
            new = order(action == "bid", value, size, order_id=next(order_ids))
            model.append(new)
            book.add(new)
        book.check_invariants()
        bids = [o for o in model if o.is_buy]
        asks = [o for o in model if not o.is_buy]
        # sorted() is stable: arrival order survives within a price
        expected = sorted(bids, key=lambda o: -o.price) + sorted(asks, key=lambda o: o.price)
        assert ids(book.orders_in_priority()) == ids(expected)
        assert book.best_bid() == max((o.price for o in bids), default=None)
        assert book.best_ask() == min((o.price for o in asks), default=None)
        for is_buy, side in ((True, bids), (False, asks)):
            levels: dict[int, tuple[int, int]] = {}
            for o in side:
                total, number = levels.get(o.price, (0, 0))
                levels[o.price] = (total + o.size, number + 1)
            best_first = sorted(levels, reverse=is_buy)
            assert book.level_sizes(is_buy, 3) == [(p, *levels[p]) for p in best_first[:3]]
