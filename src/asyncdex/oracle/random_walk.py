"""A simulated price source: a seeded random walk with occasional jumps.

Invariants: deterministic for a given seed; integer prices only, never below one tick; it
runs outside the engine (its prices enter the engine as sequenced oracle commands).
"""

from __future__ import annotations

import random


class RandomWalk:
    """Prices in a market's integer units. ``step()`` advances one period."""

    def __init__(
        self,
        start: int,
        tick: int,
        seed: int,
        volatility_ppm: int = 1_000,
        jump_probability_ppm: int = 2_000,
        jump_ppm: int = 40_000,
    ) -> None:
        self.price = start
        self.tick = tick
        self.rng = random.Random(seed)
        self.volatility_ppm = volatility_ppm
        self.jump_probability_ppm = jump_probability_ppm
        self.jump_ppm = jump_ppm

    def step(self) -> int:
        move = self.rng.randint(-self.volatility_ppm, self.volatility_ppm)
        if self.rng.randrange(1_000_000) < self.jump_probability_ppm:
            move += self.jump_ppm if self.rng.random() < 0.5 else -self.jump_ppm
        return self.move_by(move)

    def move_by(self, ppm: int) -> int:
        """Move the price by ``ppm`` parts per million, rounded to the tick."""
        price = self.price + self.price * ppm // 1_000_000
        self.price = max(self.tick, price // self.tick * self.tick)
        return self.price

    def quote(self, publisher: int) -> int:
        """One publisher's view: the price with a little publisher-specific noise."""
        noise = self.rng.randint(-2, 2) * self.tick * (publisher + 1)
        return max(self.tick, self.price + noise)
