"""The autoscaling policy of the dynamic mappings: observed load in, target active workers out.

It is pure: no I/O, no clock (time comes in each :class:`Observation`), no threads. Parking
and waking workers, or starting and stopping processes, is the actuator's job, elsewhere.
Its invariants:

* **Bounds.** Every :class:`Decision` has ``minimum <= target <= maximum``. The policy
  starts at ``initial``; by default the original's ``int(maximum / 2) + 1``, clamped.
* **Its own target.** The policy remembers the target it asked for and never resets it from
  ``Observation.active``: actuation may lag (a worker still finishing a task, a process
  still starting), and the policy must neither forget a request nor repeat it.
* **Hysteresis.** No change within ``cooldown_s`` of the previous change. A step down
  needs ``idle_time_s`` of uninterrupted idleness *measured after* the previous change,
  and any observation that is not idle restarts that clock; a step up needs a backlog
  above the threshold that is not draining. A backlog oscillating around the threshold
  with busy workers therefore only ever moves the target up, at most ``maximum - initial``
  times; up/down flapping needs a full ``idle_time_s`` of idleness between the two.

The rules, applied to each observation in turn:

* **Up** when ``backlog > queue_threshold`` and the backlog is not *draining*. Its trend
  is the least-squares slope over the last ``trend_window`` observations (a single
  observation counts as rising); it is draining when that slope is negative and steep
  enough to bring the backlog down to the threshold within ``drain_horizon_s``. (So a
  burst that arrived all at once, falling from its first observation on but slowly,
  still gets more workers.) The step is the backlog per target worker in units of the
  threshold, at least 1 and at most the current target (doubling), so a burst reaches
  ``maximum`` in a few cooldowns: ``3`` workers and a backlog of ``120`` over a threshold
  of ``10`` give ``min(3, 120 // (3 * 10)) = 3``, i.e. ``3 -> 6``. A draining backlog
  means the last step is working: wait and see. The policy does not grow while fewer
  workers are active than it already asked for (actuation has not caught up; asking
  again would overshoot).
* **Down by one** when every observation for at least ``idle_time_s`` was *idle*: the
  backlog is at most the threshold, not every active worker is busy, and either the
  active workers were idle for at least ``idle_fraction_high`` of the time since the
  previous observation or the backlog is empty while some worker has nothing to run. A
  backlog of 0 with every active worker busy is not idle (they are all needed). Each
  further step down needs another ``idle_time_s``: the workers that remain need time to
  show whether they are still surplus.
* Otherwise **hold**; the reason says why (cooldown, draining backlog, at a bound, waiting
  for actuation, steady).

The original's flags map onto it: ``dyn_auto_multi -thr/--queue_threshold`` is
``queue_threshold``; ``dyn_auto_redis -thr/--idle_time`` (milliseconds) is ``idle_time_s``
times 1000. The original grew or shrank by one on every loop turn (spec §4.6, §4.9); this
policy keeps its inputs and drops the flapping.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Observation", "Decision", "ScalingPolicy", "active_workers_timeline", "format_timeline"]


@dataclass(frozen=True)
class Observation:
    """One snapshot of the load, taken by the driver."""

    time_s: float  # monotonic seconds when observed
    backlog: int  # tasks queued and not yet taken (all queues together)
    active: int  # workers currently active (taking shared work)
    busy: int  # of those, how many are running a task right now
    idle_fraction: float = 0.0  # share of active workers' time idle since the last observation, 0..1

    def __post_init__(self) -> None:
        if not math.isfinite(self.time_s):
            raise ValueError(f"Observation.time_s must be a finite number (got {self.time_s!r})")
        for name in ("backlog", "active", "busy"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"Observation.{name} must be at least 0 (got {value!r})")
        if not 0.0 <= self.idle_fraction <= 1.0:
            raise ValueError(f"Observation.idle_fraction must be within 0..1 (got {self.idle_fraction!r})")


@dataclass(frozen=True)
class Decision:
    """What actuation should apply, and why."""

    target: int  # active workers wanted, within [minimum, maximum]
    reason: str  # one short human line
    time_s: float = 0.0  # the time of the observation it answers
    changed: bool = False  # whether ``target`` differs from the previous decision's


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number (got {value!r})")
    if value < low:
        raise ValueError(f"{name} must be at least {low} (got {value!r})")
    return value


def _check_float(name: str, value: object, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        bound = f"at least {low}" if high == math.inf else f"within {low}..{high}"
        raise ValueError(f"{name} must be a number {bound} (got {value!r})")
    return float(value)


class ScalingPolicy:
    """Observed load → target active workers; see the module docstring for the rules."""

    def __init__(
        self,
        minimum: int = 1,
        maximum: int | None = None,
        *,
        queue_threshold: int = 10,
        idle_time_s: float = 1.0,
        initial: int | None = None,
        cooldown_s: float = 0.5,
        idle_fraction_high: float = 0.5,
        trend_window: int = 3,
        drain_horizon_s: float = 1.0,
    ) -> None:
        """``maximum`` defaults to the number of CPUs (at least ``minimum``)."""
        self.minimum = _check_int("minimum", minimum, 1)
        if maximum is None:
            maximum = max(minimum, os.cpu_count() or 1)
        self.maximum = _check_int("maximum", maximum, minimum)
        self.queue_threshold = _check_int("queue_threshold", queue_threshold, 0)
        self.idle_time_s = _check_float("idle_time_s", idle_time_s, 0.0)
        self.cooldown_s = _check_float("cooldown_s", cooldown_s, 0.0)
        self.idle_fraction_high = _check_float("idle_fraction_high", idle_fraction_high, 0.0, 1.0)
        self.trend_window = _check_int("trend_window", trend_window, 2)
        self.drain_horizon_s = _check_float("drain_horizon_s", drain_horizon_s, 0.0)
        if initial is None:
            initial = min(max(int(self.maximum / 2) + 1, self.minimum), self.maximum)
        elif _check_int("initial", initial, self.minimum) > self.maximum:
            raise ValueError(f"initial must be at most maximum={self.maximum} (got {initial!r})")
        self._target = initial
        self._recent: deque[tuple[float, int]] = deque(maxlen=self.trend_window)
        self._last_time: float | None = None
        self._last_change: float | None = None  # time of the last change of target
        self._idle_since: float | None = None  # first of the current run of idle observations
        self._timeline: list[tuple[float, int]] = []

    def set_bounds(self, minimum: int, maximum: int) -> None:
        """New bounds (a fleet whose workers come and go): the target is clamped into them at
        once, which counts as no change of the policy's own (no cooldown starts); the next
        decision applies the rules within the new bounds."""
        self.minimum = _check_int("minimum", minimum, 1)
        self.maximum = _check_int("maximum", maximum, self.minimum)
        self._target = min(max(self._target, self.minimum), self.maximum)

    @property
    def target(self) -> int:
        """The active workers the policy wants now (its last decision, or ``initial``)."""
        return self._target

    @property
    def timeline(self) -> list[tuple[float, int]]:
        """``(time_s, target)`` after the first decision and after every change since (the same
        as :func:`active_workers_timeline` of every decision)."""
        return list(self._timeline)

    def decide(self, obs: Observation) -> Decision:
        """Take one observation (times must not go backwards) and return the target to apply."""
        if self._last_time is not None and obs.time_s < self._last_time:
            raise ValueError(f"Observation.time_s went backwards: {obs.time_s!r} after {self._last_time!r}")
        self._last_time = obs.time_s
        self._recent.append((obs.time_s, obs.backlog))
        if self._is_idle(obs):
            if self._idle_since is None:
                self._idle_since = obs.time_s
        else:
            self._idle_since = None

        decision = self._decide(obs)
        if not self._timeline or decision.changed:
            self._timeline.append((obs.time_s, decision.target))
        return decision

    def _decide(self, obs: Observation) -> Decision:
        wanted, reason = self._propose(obs)
        if wanted == self._target:
            return Decision(self._target, reason, obs.time_s)
        if self._last_change is not None and obs.time_s - self._last_change < self.cooldown_s:
            left = self.cooldown_s - (obs.time_s - self._last_change)
            return Decision(self._target, f"hold {self._target}: cooldown {left:.2f} s left", obs.time_s)
        previous, self._target = self._target, wanted
        self._last_change = obs.time_s
        if self._idle_since is not None:
            self._idle_since = obs.time_s  # idleness is measured afresh under the new target
        return Decision(wanted, f"{reason}: {previous} -> {wanted} workers", obs.time_s, changed=True)

    def _is_idle(self, obs: Observation) -> bool:
        if obs.backlog > self.queue_threshold:
            return False
        working = min(obs.active, self._target)  # the surplus of a lagging scale-down does not count
        if working == 0 or obs.busy >= working:
            return False
        return obs.idle_fraction >= self.idle_fraction_high or obs.backlog == 0

    def _draining(self, backlog: int) -> bool:
        """Whether the backlog falls fast enough to be down to the threshold within the horizon."""
        if len(self._recent) < 2:
            return False
        n = len(self._recent)
        mean_t = sum(t for t, _ in self._recent) / n
        mean_b = sum(b for _, b in self._recent) / n
        spread = sum((t - mean_t) ** 2 for t, _ in self._recent)
        if spread == 0.0:  # every observation at one instant: no rate, only a direction
            return self._recent[-1][1] < self._recent[0][1]
        slope = sum((t - mean_t) * (b - mean_b) for t, b in self._recent) / spread
        return slope < 0.0 and (backlog - self.queue_threshold) <= -slope * self.drain_horizon_s

    def _propose(self, obs: Observation) -> tuple[int, str]:
        target, threshold = self._target, self.queue_threshold
        if obs.backlog > threshold:
            if target >= self.maximum:
                return target, f"hold {target}: backlog {obs.backlog} > threshold {threshold}, at maximum"
            if self._draining(obs.backlog):
                return target, f"hold {target}: backlog {obs.backlog} > threshold {threshold}, draining"
            if obs.active < target:
                return target, f"hold {target}: waiting for actuation ({obs.active} of {target} active)"
            step = min(target, max(1, obs.backlog // (target * max(threshold, 1))))
            return min(self.maximum, target + step), f"backlog {obs.backlog} rising > threshold {threshold}"
        if self._idle_since is not None:
            idle_for = obs.time_s - self._idle_since
            if idle_for < self.idle_time_s:
                return target, f"hold {target}: idle for {idle_for:.2f} s of {self.idle_time_s:.2f} s"
            if target <= self.minimum:
                return target, f"hold {target}: idle, at minimum"
            return target - 1, f"idle for {idle_for:.2f} s >= {self.idle_time_s:.2f} s"
        return target, f"hold {target}: steady (backlog {obs.backlog}, {obs.busy} of {obs.active} busy)"


def active_workers_timeline(
    decisions: Iterable[Decision | tuple[float, int]],
) -> list[tuple[float, int]]:
    """``(time_s, target)`` of the first decision and of every one that changed the target.

    Takes :class:`Decision` objects or ``(time_s, target)`` pairs, in time order.
    """
    timeline: list[tuple[float, int]] = []
    for item in decisions:
        time_s, target = (item.time_s, item.target) if isinstance(item, Decision) else item
        if not timeline or timeline[-1][1] != target:
            timeline.append((float(time_s), int(target)))
    return timeline


def format_timeline(timeline: Iterable[tuple[float, int]]) -> str:
    """One line for ``--stats``: ``"3 @0.00s -> 6 @0.52s -> 4 @3.10s"`` (empty if no decisions)."""
    return " -> ".join(f"{target} @{time_s:.2f}s" for time_s, target in timeline)
