"""One budget for every consensus run: iterations, generator tokens, scorer calls and wall seconds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """Limits of one run; ``None`` means unlimited. The engine stops before an iteration whose scorer
    calls it can no longer afford and after one that overspent tokens or seconds (a generator step
    cannot be cut in the middle)."""

    iterations: int = 1
    generator_tokens: int | None = None
    scorer_calls: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"Budget.iterations must be >= 1, got {self.iterations}")
        for name in ("generator_tokens", "scorer_calls", "seconds"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Budget.{name} must be >= 0 or None, got {value}")

    def spent(self, tokens: int, calls: int, calls_per_iteration: int, seconds: float) -> bool:
        """Whether the run must stop now, after spending ``tokens``, ``calls`` and ``seconds``."""
        return (
            (self.generator_tokens is not None and tokens >= self.generator_tokens)
            or (self.scorer_calls is not None and calls + calls_per_iteration > self.scorer_calls)
            or (self.seconds is not None and seconds >= self.seconds)
        )
