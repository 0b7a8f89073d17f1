"""The pipelined Study: candidates finishing in any order give the same run (results committed in
candidate order), at most `batch` are in flight, strategies that learn in rounds keep the batches of
before, and a crash with trainings in flight resumes by re-queueing them from their start records."""

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_search_robustness import BOARD, KINDS, SPACE, TRIALS, fake_trainer, sequence

from codesign.search.evaluator import Evaluator, Reward
from codesign.search.journal import Journal, load_state
from codesign.search.strategies import make_strategy
from codesign.search.study import StopRule, Study
from codesign.search.training import proxy_budget
from hw_space.boards import load_board


class ShuffledExecutor:
    """Threads with random delays: candidates finish out of order. Counts the jobs running at once."""

    def __init__(self, capacity: int, seed: int):
        self.capacity = capacity
        self.rng = random.Random(seed)
        self.pool: ThreadPoolExecutor | None = None
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def submit(self, fn, *args):
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.capacity)
        delay = self.rng.random() * 0.03

        def job():
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            try:
                time.sleep(delay)
                return fn(*args)
            finally:
                with self.lock:
                    self.running -= 1

        return self.pool.submit(job)

    def close(self, kill=False):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def study(folder, kind, batch, executor=None, trainer=fake_trainer, trials=TRIALS):
    name, options = KINDS[kind]
    ev = Evaluator(SPACE, load_board(BOARD), Reward("fps", 10_000.0, "soft"), budget=proxy_budget(1),
                   trainer=trainer, executor=executor)
    return Study(make_strategy(name, SPACE, seed=11, **options), ev, Journal(folder / "journal.jsonl"),
                 folder / "controller.pt", StopRule(max_trials=trials), batch=batch)


# rl-combined by default (the controller whose state the order could disturb most); the others are slow
@pytest.mark.parametrize("kind", [pytest.param("random", marks=pytest.mark.slow), "rl-combined",
                                  pytest.param("evolution", marks=pytest.mark.slow)])
def test_finish_order_does_not_change_the_run(tmp_path, kind):
    inline = study(tmp_path / "inline", kind, 3)
    expected = sequence(inline.run())
    next_ask = inline.strategy.ask()
    for seed in (1, 2):
        ex = ShuffledExecutor(3, seed)
        s = study(tmp_path / f"threads{seed}", kind, 3, executor=ex)
        assert sequence(s.run()) == expected and s.strategy.ask() == next_ask
        assert 1 <= ex.most <= 3


def test_rounds_keep_their_batches_and_random_fills_free_slots(tmp_path):
    rl = study(tmp_path / "rl", "rl-combined", 2).run()
    assert [r.replay["batch"] for r in rl] == [[n - n % 2, min(2, TRIALS - (n - n % 2))] for n in range(TRIALS)]
    assert all("told" not in r.replay for r in rl)
    rnd = study(tmp_path / "random", "random", 2).run()
    assert [r.replay["batch"] for r in rnd[:4]] == [[0, 2], [0, 2], [2, 1], [3, 1]]
    assert [r.replay.get("told") for r in rnd[:4]] == [None, None, 1, 2]  # asked as a slot freed


class Crash(Exception):
    pass


def test_a_crash_with_trainings_in_flight_requeues_them(tmp_path, tmp_path_factory):
    reference = study(tmp_path_factory.mktemp("ref"), "rl-combined", 2)
    expected, next_ask = sequence(reference.run()), reference.strategy.ask()
    calls = [0]

    def crashing(network, *args):
        calls[0] += 1
        if calls[0] == 3:
            raise Crash()
        return fake_trainer(network, *args)

    first = study(tmp_path, "rl-combined", 2, executor=ShuffledExecutor(2, 5), trainer=crashing)
    with pytest.raises(Crash):
        first.run()
    first.journal.close()
    journal = Journal(tmp_path / "journal.jsonl")
    done, started = journal.load(), journal.load_started()
    in_flight = sorted(n for n in started if n >= len(done))
    assert in_flight and (tmp_path / "journal.started.jsonl").exists()
    again = study(tmp_path, "rl-combined", 2, executor=ShuffledExecutor(2, 6))
    again.restore(done, load_state(tmp_path / "controller.pt"))
    assert again.in_flight == in_flight  # re-queued with their numbers
    submitted = []
    real = again.evaluator.submit
    again.evaluator.submit = lambda record: submitted.append((record.number, record.tokens)) or real(record)
    records = again.run()
    assert sequence(records) == expected and again.strategy.ask() == next_ask
    assert [(n, started[n].tokens) for n in in_flight] == submitted[:len(in_flight)]  # same tokens, same numbers
    assert load_state(tmp_path / "controller.pt")["trials"] == TRIALS


def test_an_old_journal_without_start_records_resumes(tmp_path, tmp_path_factory):
    reference = study(tmp_path_factory.mktemp("ref"), "evolution", 2)
    expected = sequence(reference.run())
    full = study(tmp_path, "evolution", 2)
    full.run()
    full.journal.close()
    lines = (tmp_path / "journal.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "journal.jsonl").write_text("".join(lines[:5]))  # #5 lost: the group [4, 2] half journaled
    (tmp_path / "journal.started.jsonl").unlink()  # a journal of before start records
    again = study(tmp_path, "evolution", 2)
    again.restore(Journal(tmp_path / "journal.jsonl").load())
    assert sequence(again.run()) == expected
