"""The Study loop that drives one search strategy: keep the executor's capacity of candidates in
flight - ask, have the Evaluator cost them, journal their start, submit their training - and, as each
finishes (in candidate order), journal it, tell the strategy and checkpoint; a resumed Study rebuilds
its strategy by replaying the journal (`Study.restore`) and re-queues what was in flight.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
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

    capacity: int

    def propose(self, number: int, tokens: list[int], strategy: Strategy) -> TrialRecord: ...

    def submit(self, record: TrialRecord) -> Future: ...

    def restore(self, records: list[TrialRecord]) -> None: ...

    def close(self, kill: bool = False) -> None: ...


def objectives_of(record: TrialRecord) -> dict[str, float | None]:
    """What strategies learn from a journaled candidate besides its reward: every registered
    objective's value by name (codesign.search.objectives), and whether it was feasible."""
    return {**values_of(record), "feasible": float(record.status != "pruned")}


REPLAYABLE = ("resample_hardware",)  # the strategy calls the cost model makes (journaled, replayed on resume)


@dataclass
class _Slot:
    """A candidate asked and not yet told: its start record (costed), its finish record when the
    journal already has it (a resumed run), and the future of its finish record once submitted."""

    number: int
    record: TrialRecord
    finished: TrialRecord | None = None
    journaled_start: bool = False
    future: Future | None = None


class Study:
    """Keep `batch` candidates in flight (default: the evaluator's capacity): ask the strategy for as
    many proposals as it can make without waiting (`can_ask`), cost them, journal their start records,
    submit them; as each finishes, in candidate order (a reorder buffer), journal its finish record,
    tell the strategy and checkpoint, until the stop rule says so.

    Same seed, same run, whatever the timing: results are committed in candidate order, and the
    strategy is asked only at commits, so it sees the same calls (asks, the cost model's hardware
    resampling, tells) in the same order. A strategy that learns in rounds (the default `can_ask`)
    asks `batch` proposals once all earlier ones are told: the batches of before. The journal is the
    source of truth: `restore` rebuilds the strategy by replaying it, so a crash at any point resumes
    the uninterrupted run's sequence."""

    objectives: tuple[Objective, ...] = DEFAULT_OBJECTIVES  # the run's objectives (front_size); codesign search sets them

    def __init__(self, strategy: Strategy, evaluator: Evaluates, journal: Journal, state_path: Any,
                 stop: StopRule, batch: int | None = None, progress: Callable[[Study], None] | None = None,
                 extra_state: dict[str, Any] | None = None):
        self.strategy = strategy
        self.evaluator = evaluator
        self.journal = journal
        self.state_path = state_path
        self.stop = stop
        self.batch = max(1, batch if batch is not None else int(getattr(evaluator, "capacity", 1)))
        self.progress = progress
        self.extra_state = dict(extra_state or {})
        self.records: list[TrialRecord] = []  # told, in candidate order
        self.elapsed_before = 0.0
        self._started = time.perf_counter()
        self._pending: deque[_Slot] = deque()  # asked, not yet told, in candidate order
        self._asked = 0
        self._log_finished: dict[int, TrialRecord] = {}  # journaled, not yet replayed (restore)
        self._log_started: dict[int, TrialRecord] = {}
        self._source: str | None = None
        self._saved_trials: int | None = None

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self._started

    def counts(self) -> dict[str, int]:
        out = {"trained": 0, "cached": 0, "pruned": 0}
        for r in self.records:
            out[r.status] += 1
        return out

    @property
    def in_flight(self) -> list[int]:
        """Numbers of the candidates asked and not yet told."""
        return [slot.number for slot in self._pending]

    # ------------------------------------------------------------ resume
    def restore(self, records: list[TrialRecord], state: dict[str, Any] | None = None,
                started: dict[int, TrialRecord] | None = None) -> None:
        """Continue a journaled run; `self.strategy` must be freshly made with the run's seed.

        The strategy state is derived from the journal, never from the checkpoint (which may lag
        behind it): the run's sequence is made again - each journaled group of proposals asked at the
        point it was asked, the calls the cost model made on the strategy (its hardware resampling)
        made again, the journaled rewards told in order - so the strategy ends in the same state,
        random generators included. Each replayed proposal must equal the journaled one, else the run
        folder is refused. Candidates started but not finished (their start records, `started`: read
        from the journal when not given) are re-queued with the same tokens and number; proposals of a
        group the journal has no record of are costed again. Trained networks go into the evaluator's
        cache; the checkpoint only gives the search time spent before."""
        self._source = str(getattr(self.journal, "path", "")) or None
        for i, r in enumerate(records):
            if r.number != i:
                raise CodesignError(f"journal record {i + 1} is candidate #{r.number}, expected #{i}: the journal is "
                                    "damaged (did two searches write into this run folder at once?)",
                                    source=self._source)
            if not isinstance(r.replay, dict):
                raise CodesignError(f"candidate #{r.number}: replay is not a mapping: the journal is damaged",
                                    source=self._source)
        if started is None:
            load_started = getattr(self.journal, "load_started", None)
            started = load_started() if load_started is not None else {}
        self.evaluator.restore(list(records))
        if state is not None:
            self.elapsed_before = float(state.get("elapsed_s", 0.0))
            self._saved_trials = state.get("trials")
        self._started = time.perf_counter()
        self._log_finished = {r.number: r for r in records}
        self._log_started = {n: r for n, r in started.items() if n >= len(records) and isinstance(r.replay, dict)}
        self._fill()
        while self._pending and self._pending[0].finished is not None:
            self._tell(self._pending.popleft().finished)
        if self._log_finished:
            first = min(self._log_finished)
            raise CodesignError(f"candidate #{first} is journaled but its group of proposals was never asked in the "
                                "replay: the journal is damaged", source=self._source)
        self._log_started.clear()

    def _journaled_group(self, n: int) -> tuple[int, int] | None:
        """(size, told) of the group of proposals candidate #n opens in the journal: asked together
        when `told` candidates had been told; None when the journal has no record of #n."""
        record = self._log_finished.get(n) or self._log_started.get(n)
        if record is None:
            return None
        batch = record.replay.get("batch")
        if batch is None:  # journaled before groups were recorded: groups of `batch`, as many as the records say
            size = 0
            while size < self.batch and n + size in self._log_finished and \
                    self._log_finished[n + size].replay.get("batch") is None:
                size += 1
            return max(size, 1), n
        try:
            start, size = int(batch[0]), int(batch[1])
            told = int(record.replay.get("told", start))
        except (TypeError, ValueError, IndexError):
            raise CodesignError(f"candidate #{n}: batch {str(batch)[:40]} is not [first, size]: the journal is "
                                "damaged", source=self._source) from None
        if start != n or size < 1 or not 0 <= told <= n:
            raise CodesignError(f"candidate #{n} opens no batch (batch {batch}): the journal is damaged",
                                source=self._source)
        return size, told

    # ------------------------------------------------------------ asking
    def _room(self) -> int:
        """Proposals to ask now by the live rule: free slots, what the strategy can make without a tell,
        the trials left; none once the stop rule says so."""
        told, pending = len(self.records), len(self._pending)
        if self.stop.done(told, self.counts()["trained"], self.elapsed):
            return 0
        can_ask = getattr(self.strategy, "can_ask", None)
        ready = can_ask(pending, self.batch) if can_ask is not None else (self.batch if pending == 0 else 0)
        room = min(self.batch - pending, ready)
        if self.stop.max_trials is not None:
            room = min(room, self.stop.max_trials - self._asked)
        return max(0, room)

    def _fill(self) -> None:
        """Ask and cost the next group of proposals when the journal says the run did so here (resume)
        or, past the journal, when the live rule (`_room`) allows."""
        while True:
            n, told = self._asked, len(self.records)
            group = self._journaled_group(n)
            if group is not None:
                size, at = group
                if at > told:
                    return  # asked later, after more tells
                if at < told:
                    raise CodesignError(f"candidate #{n} was asked after {at} tells, but the replay has made {told}: "
                                        "the journal is damaged", source=self._source)
            else:
                size = self._room()
                if size == 0:
                    return
            asks = [self.strategy.ask() for _ in range(size)]
            for i, ask in enumerate(asks):
                self._pending.append(self._slot(n + i, ask, [n, size], told))
            self._asked += size

    def _slot(self, number: int, ask: list[int], batch: list[int], told: int) -> _Slot:
        """One proposal costed: its journaled calls made again (resume), else costed by the evaluator."""
        finished = self._log_finished.pop(number, None)
        started = self._log_started.pop(number, None)
        known = finished or started
        if known is not None:
            self._replay_cost(ask, known, self._source)
            return _Slot(number, known, finished=finished, journaled_start=started is not None)
        record = self.evaluator.propose(number, ask, self.strategy)
        record.replay["batch"] = batch
        if told != batch[0]:  # asked before every earlier candidate was told (a strategy that does not learn in rounds)
            record.replay["told"] = told
        return _Slot(number, record)

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
        self._saved_trials = len(self.records)

    # ------------------------------------------------------------ running
    def _within(self, number: int) -> bool:
        return self.stop.max_trials is None or number < self.stop.max_trials

    def _submit(self) -> None:
        """Journal the start records of the asked candidates (one write), then submit them."""
        new = [slot for slot in self._pending if slot.future is None and self._within(slot.number)]
        self.journal.start([slot.record for slot in new if not slot.journaled_start])
        for slot in new:
            slot.journaled_start = True
            slot.future = self.evaluator.submit(slot.record)

    def _finished_head(self) -> list[TrialRecord]:
        """Wait for the lowest-numbered candidate in flight; the finish records of it and of the ones
        after it that have finished too (in candidate order)."""
        out = []
        for slot in self._pending:
            if slot.future is None or (out and not slot.future.done()):
                break
            out.append(slot.future.result())  # waits for the head; a training's failure is raised here
        return out

    def _tell(self, record: TrialRecord) -> None:
        self.records.append(record)
        self.strategy.tell(record.tokens, record.reward, objectives_of(record))
        self._fill()

    def run(self) -> list[TrialRecord]:
        """Run until the stop rule. Finished candidates are journaled (one write for those finishing
        together) before the strategy is told; a stop signal (Ctrl-C, SIGTERM) is held while they are
        journaled, told and checkpointed, then propagates. On any error or stop the trainings in flight
        are abandoned; their start records make a resumed run re-queue them. A crash anywhere leaves a
        journal `restore` resumes from."""
        try:
            self._fill()
            while self._pending and self._within(self._pending[0].number):
                self._submit()
                done = self._finished_head()
                with deferred_interrupt():  # journal, tell and checkpoint stay together under Ctrl-C / SIGTERM
                    self.journal.append_many(done)
                    for record in done:
                        self._pending.popleft()
                        self._tell(record)
                    self.checkpoint()
                if self.progress is not None:
                    self.progress(self)
            if self._saved_trials != len(self.records):
                self.checkpoint()
        except BaseException:
            self.evaluator.close(kill=True)
            raise
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
