"""The Study loop that drives one search strategy: ask, have the Evaluator cost / train / score the
proposals, journal them, tell and checkpoint; a resumed Study rebuilds its strategy by replaying the
journal (`Study.restore`).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from codesign.search.journal import Journal, TrialRecord, save_state
from codesign.search.objectives import DEFAULT_OBJECTIVES, Objective, points, values_of, with_resources
from codesign.search.pareto import pareto_mask
from codesign.search.strategies import Strategy
from hw_space.errors import CodesignError

# ---------------------------------------------------------------- the study loop

@dataclass(frozen=True)
class StopRule:
    """When the study ends: after max_trials candidates, max_trained trainings or time_budget_s of
    search time (across resumed sessions), whichever comes first."""

    max_trials: int | None = None
    max_trained: int | None = None
    time_budget_s: float | None = None

    def done(self, trials: int, trained: int, elapsed: float) -> bool:
        return ((self.max_trials is not None and trials >= self.max_trials)
                or (self.max_trained is not None and trained >= self.max_trained)
                or (self.time_budget_s is not None and elapsed >= self.time_budget_s))


class Evaluates(Protocol):
    """The Study's view of the Evaluator (codesign.search.evaluator)."""

    def evaluate(self, asks: list[list[int]], strategy: Strategy, first_number: int) -> list[TrialRecord]: ...

    def restore(self, records: list[TrialRecord]) -> None: ...


def objectives_of(record: TrialRecord) -> dict[str, float | None]:
    """What strategies learn from a journaled candidate besides its reward: every registered
    objective's value by name (codesign.search.objectives), and whether it was feasible."""
    return {**values_of(record), "feasible": float(record.status != "pruned")}


REPLAYABLE = ("resample_hardware",)  # the strategy calls the cost model makes (journaled, replayed on resume)


@dataclass
class _Batch:
    """Proposals asked together (numbers start .. start+size-1): those still to evaluate, and the
    records already journaled (told with the rest once the whole batch is journaled)."""

    start: int
    size: int
    asks: list[list[int]]
    journaled: list[TrialRecord]


class Study:
    """Ask `batch` proposals, evaluate them, journal the batch, tell the strategy and checkpoint it
    atomically, until the stop rule says so. The journal is the source of truth: `restore` rebuilds
    the strategy by replaying it, so a crash at any point resumes the uninterrupted run's sequence."""

    objectives: tuple[Objective, ...] = DEFAULT_OBJECTIVES  # the run's objectives (front_size); codesign search sets them

    def __init__(self, strategy: Strategy, evaluator: Evaluates, journal: Journal, state_path: Any,
                 stop: StopRule, batch: int = 1, progress: Callable[[Study], None] | None = None,
                 extra_state: dict[str, Any] | None = None):
        self.strategy = strategy
        self.evaluator = evaluator
        self.journal = journal
        self.state_path = state_path
        self.stop = stop
        self.batch = max(1, batch)
        self.progress = progress
        self.extra_state = dict(extra_state or {})
        self.records: list[TrialRecord] = []
        self.elapsed_before = 0.0
        self._started = time.perf_counter()
        self._unfinished: _Batch | None = None  # a journaled batch cut short, completed first by run()

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self._started

    def counts(self) -> dict[str, int]:
        out = {"trained": 0, "cached": 0, "pruned": 0}
        for r in self.records:
            out[r.status] += 1
        return out

    def restore(self, records: list[TrialRecord], state: dict[str, Any] | None = None) -> None:
        """Continue a journaled run; `self.strategy` must be freshly made with the run's seed.

        The strategy state is derived from the journal, never from the checkpoint (which may lag
        behind it): every journaled batch is asked again, the calls the cost model made on the
        strategy (its hardware resampling) are made again and the journaled rewards told, in the
        original order - the same calls as the uninterrupted run, so the same state, random
        generators included. Each replayed proposal must equal the journaled one, else the run
        folder is refused. A last batch cut short (a crash or a full disk between its records) is
        completed first by `run`. Trained networks go into the evaluator's cache; the checkpoint
        only gives the search time spent before."""
        self.records = list(records)
        source = str(getattr(self.journal, "path", "")) or None
        for i, r in enumerate(self.records):
            if r.number != i:
                raise CodesignError(f"journal record {i + 1} is candidate #{r.number}, expected #{i}: the journal is "
                                    "damaged (did two searches write into this run folder at once?)", source=source)
            if not isinstance(r.replay, dict):
                raise CodesignError(f"candidate #{r.number}: replay is not a mapping: the journal is damaged",
                                    source=source)
        self.evaluator.restore(self.records)
        self._unfinished = self._replay(self.records, source)
        if state is not None:
            self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self._started = time.perf_counter()

    def _replay(self, records: list[TrialRecord], source: str | None) -> _Batch | None:
        """Re-run the strategy's side of every journaled batch; the last batch when it was cut short."""
        i = 0
        while i < len(records):
            first = records[i]
            batch = first.replay.get("batch")
            try:
                start, size = (first.number, self.batch) if batch is None else (int(batch[0]), int(batch[1]))
            except (TypeError, ValueError, IndexError):
                raise CodesignError(f"candidate #{first.number}: batch {str(batch)[:40]} is not [first, size]: the "
                                    "journal is damaged", source=source) from None
            group = [first]
            while i + len(group) < len(records) and len(group) < size and \
                    records[i + len(group)].replay.get("batch") == batch:
                group.append(records[i + len(group)])
            i += len(group)
            if batch is None:  # journaled before batches were recorded: the batch ends where the records say
                size = len(group)
            if start != first.number or size < 1:
                raise CodesignError(f"candidate #{first.number} opens no batch (batch {batch}): the journal is "
                                    "damaged", source=source)
            asks = [self.strategy.ask() for _ in range(size)]
            for ask, record in zip(asks, group):
                self._replay_cost(ask, record, source)
            if len(group) < size:
                if i < len(records):
                    raise CodesignError(f"the batch of candidate #{start} has {len(group)} of its {size} records and "
                                        "more records follow: the journal is damaged", source=source)
                return _Batch(start, size, asks[len(group):], group)
            for record in group:
                self.strategy.tell(record.tokens, record.reward, objectives_of(record))
        return None

    def _replay_cost(self, ask: list[int], record: TrialRecord, source: str | None) -> None:
        """The strategy calls the cost model made for one journaled proposal, made again."""
        def refuse(got: Any) -> CodesignError:
            return CodesignError(f"cannot resume: replaying the journal, candidate #{record.number} comes out as "
                                 f"{got}, not as journaled (was the run folder written by another version of "
                                 "codesign, or edited?)", source=source)

        if "asked" not in record.replay:  # journaled before the calls were recorded: cost it again
            cost = getattr(self.evaluator, "cost", None)
            tokens = list(cost(ask, self.strategy).tokens) if cost is not None else list(ask)
            if tokens != list(record.tokens):
                raise refuse(tokens)
            return
        if list(ask) != list(record.replay["asked"]):
            raise refuse(list(ask))
        made = [list(ask)]
        for call in record.replay.get("calls", []):
            try:
                name, args, kwargs = call[0], list(call[1]), dict(call[2] if len(call) > 2 else {})
            except (TypeError, ValueError, IndexError, KeyError):
                name = None
            if name not in REPLAYABLE:
                raise CodesignError(f"candidate #{record.number}: the journal asks to replay {str(call)[:80]}, which "
                                    f"is not a strategy call the cost model makes ({', '.join(REPLAYABLE)}): the "
                                    "journal is damaged", source=source)
            result = getattr(self.strategy, name)(*args, **kwargs)
            if isinstance(result, list):
                made += [list(r) for r in result if isinstance(r, (list, tuple))]
        if list(record.tokens) not in made:
            raise refuse(f"one of {len(made)} proposals none of which is {list(record.tokens)}")

    def checkpoint(self) -> None:
        """A snapshot of the strategy (tensors and plain values only: loaded with weights_only=True)."""
        save_state(self.state_path, {"strategy": self.strategy.state_dict(), "trials": len(self.records),
                                     "elapsed_s": self.elapsed, **self.extra_state})

    def run(self) -> list[TrialRecord]:
        """Run until the stop rule. Each batch is journaled with one write before the strategy is
        told; a stop signal (Ctrl-C, SIGTERM) is held while a batch is journaled, told and
        checkpointed, then propagates. A crash anywhere leaves a journal `restore` resumes from."""
        while True:
            c = self.counts()
            n = len(self.records)
            if self.stop.done(n, c["trained"], self.elapsed):
                break
            room = self.stop.max_trials - n if self.stop.max_trials is not None else None
            if self._unfinished is not None:
                batch, self._unfinished = self._unfinished, None
            else:
                k = self.batch if room is None else min(self.batch, room)
                batch = _Batch(n, k, [self.strategy.ask() for _ in range(k)], [])
            asks = batch.asks if room is None else batch.asks[:room]
            records = self.evaluator.evaluate(asks, self.strategy, n)
            for record in records:
                record.replay["batch"] = [batch.start, batch.size]
            with deferred_interrupt():  # journal, tell and checkpoint stay together under Ctrl-C / SIGTERM
                self.journal.append_many(records)
                self.records.extend(records)
                done = batch.journaled + records
                if len(done) == batch.size:
                    for record in done:
                        self.strategy.tell(record.tokens, record.reward, objectives_of(record))
                else:  # a resumed batch cut short by --trials: the rest waits for a later resume
                    self._unfinished = _Batch(batch.start, batch.size, batch.asks[len(asks):], done)
                self.checkpoint()
            if self.progress is not None:
                self.progress(self)
        return self.records

    def front_size(self) -> int:
        """How many candidates are on the resource-aware front of the run's objectives (the progress line)."""
        done = [r for r in self.records if r.status != "pruned" and r.accuracy is not None]
        return int(pareto_mask(points(done, with_resources(self.objectives), scaled=False)).sum()) if done else 0

    def best_reward(self) -> float:
        return max((r.reward for r in self.records), default=float("nan"))


_DEFERRED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold a stop signal (SIGINT, SIGTERM, SIGHUP) that arrives inside the block until the block has
    finished, then deliver the first one to the handler in place before (Ctrl-C's KeyboardInterrupt,
    the search's clean stop, or the default action). Ignored signals stay ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous: dict[int, Any] = {}
    for sig in _DEFERRED:
        handler = signal.getsignal(sig)
        if handler is signal.SIG_IGN or handler is None:  # None: installed outside Python, cannot be restored
            continue
        previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        signal.raise_signal(caught[0])


def progress_printer(total: int | None, stream: Any = None) -> Callable[[Study], None]:
    """A progress line on stderr: trials done, statuses, best reward, front size, time."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    last = [0.0]

    def show(study: Study) -> None:
        c = study.counts()
        n = len(study.records)
        line = (f"search: {n}{'/' + str(total) if total else ''} trials (trained {c['trained']}, cached {c['cached']}, "
                f"pruned {c['pruned']}), best reward {study.best_reward():.4f}, front {study.front_size()}, "
                f"{study.elapsed:.0f} s")
        if tty:
            stream.write("\r" + line + "\033[K")
            stream.flush()
        elif study.elapsed - last[0] >= 15 or (total and n >= total):
            last[0] = study.elapsed
            stream.write(line + "\n")
            stream.flush()

    return show


__all__ = ["StopRule", "Study", "deferred_interrupt", "objectives_of", "progress_printer"]
