"""Long runs a user can trust: one run per folder (a lock), clean stops on SIGINT and
SIGTERM, training workers that die with a killed search and write nothing after it, a journal that
resumes the uninterrupted run's exact candidate sequence whatever point a crash or a full disk
stopped it at, and run folders whose files are never unpickled as code."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from test_search_cli import TINY, search_cmd, wait_for_lines

from codesign.cli import main
from codesign.search.evaluator import Evaluator, Reward
from codesign.search.journal import Journal, load_state
from codesign.search.runguard import LOCK, RunLock, StopRequested, stop_signals
from codesign.search.space import Context, space_from_dict
from codesign.search.strategies import make_strategy
from codesign.search.study import StopRule, Study, deferred_interrupt
from codesign.search.training import TrainOutcome, proxy_budget
from hw_space.boards import load_board
from hw_space.errors import CodesignError

FAST = ["--reward", "soft", "--target-fps", "10000"]  # a given target: no median of 500 designs to compute
LINUX = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")


# ---------------------------------------------------------------- replaying the journal (Study level)

BOARD = "pynq-z2"  # a small board: many proposals need their hardware resampled, some are pruned
SPACE = space_from_dict({
    "network": {"conv_blocks": [1, 2], "dense_layers": [0, 1], "kernel": [1, 3], "channels": [8, 16, 32],
                "dense_features": [16, 32], "weight_bits": [1, 2, 4, 8], "act_bits": [1, 2, 4, 8]},
    "hardware": {"pe": [0.0, 0.5, 1.0], "simd": [0.0, 0.5, 1.0], "weight_memory": ["auto", "lutram", "bram"]}},
    context=Context(1, 8, 8, 10, board=BOARD))
KINDS = {"random": ("random", {}), "evolution": ("evolution", {"population": 4}),
         "rl-combined": ("rl", {"rl_mode": "combined"}), "rl-phase": ("rl", {"rl_mode": "phase", "phase_length": 2}),
         "rl-separate": ("rl", {"rl_mode": "separate"})}
TRIALS = 9


class Crash(Exception):
    """A crash injected into a session (the process would die here)."""


def fake_trainer(network, dataset, data_dir, budget, model_path=None):
    """Deterministic stand-in for QAT: the accuracy comes from the network's hash."""
    return TrainOutcome(int(network.content_hash()[:6], 16) % 1000 / 1000, 0.01, 1, "fake")


def make_study(folder: Path, kind: str, batch: int, seed: int = 11) -> Study:
    name, options = KINDS[kind]
    evaluator = Evaluator(SPACE, load_board(BOARD), Reward("fps", 10_000.0, "soft"), budget=proxy_budget(1),
                          trainer=fake_trainer)
    return Study(make_strategy(name, SPACE, seed=seed, **options), evaluator, Journal(folder / "journal.jsonl"),
                 folder / "controller.pt", StopRule(max_trials=TRIALS), batch=batch)


def sequence(records) -> list[tuple]:
    return [(r.number, r.tokens, r.status, r.reward, r.accuracy) for r in records]


_REFERENCES: dict = {}


def reference(tmp_path_factory, kind: str, batch: int):
    """The uninterrupted run: its candidate sequence and the strategy's next proposal after it."""
    if (kind, batch) not in _REFERENCES:
        study = make_study(tmp_path_factory.mktemp("reference"), kind, batch)
        records = study.run()
        _REFERENCES[kind, batch] = (sequence(records), study.strategy.ask())
    return _REFERENCES[kind, batch]


def session(folder: Path, kind: str, batch: int, fault: tuple | None) -> tuple[Study, bool, bool]:
    """One process's life: resume (when there is a journal), run, and die at `fault`:
    ("journal", n, cut) - the n-th journal write puts `cut` of its bytes on disk ("none", "half" a
    line, the first "line", "all" of them) then fails with ENOSPC; ("checkpoint", n) - the n-th
    controller.pt write fails with ENOSPC; ("tell", n) / ("train", n) - a crash in the n-th tell /
    training. Returns the study, whether it finished and whether the fault fired."""
    study = make_study(folder, kind, batch)
    journal = folder / "journal.jsonl"
    if journal.exists():
        study.restore(Journal(journal).load(), load_state(folder / "controller.pt"))
    what, n = (fault or (None, 0))[:2]
    count, fired = [0], [False]

    def hit() -> bool:
        count[0] += 1
        fired[0] = fired[0] or count[0] == n
        return count[0] == n

    with pytest.MonkeyPatch.context() as mp:
        if what == "journal":
            real_write = Journal._write

            def write(self, data):
                if hit():
                    first = data.index(b"\n") + 1
                    real_write(self, data[:{"none": 0, "half": first // 2, "line": first, "all": len(data)}[fault[2]]])
                    raise OSError(errno.ENOSPC, "No space left on device")
                real_write(self, data)

            mp.setattr(Journal, "_write", write)
        elif what == "checkpoint":
            real_save = torch.save

            def save(obj, f, *args, **kwargs):
                if hit():
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_save(obj, f, *args, **kwargs)

            mp.setattr(torch, "save", save)
        elif what in ("tell", "train"):
            target, attr = (study.strategy, "tell") if what == "tell" else (study.evaluator, "trainer")
            real = getattr(target, attr)

            def crash(*args, **kwargs):
                if hit():
                    raise Crash(what)
                return real(*args, **kwargs)

            mp.setattr(target, attr, crash)
        try:
            study.run()
            return study, True, fired[0]
        except (CodesignError, Crash):
            return study, False, fired[0]
        finally:
            study.journal.close()


# a crash at every kind of point: a torn or partial journal write, a journal batch written but not
# told or checkpointed, a failed checkpoint, a crash in the middle of telling a batch or of training it
CHAIN = [("journal", 1, "half"), ("journal", 2, "line"), ("checkpoint", 1), ("tell", 2), ("journal", 1, "all"),
         ("train", 2), ("journal", 1, "none"), ("checkpoint", 2)]


def run_chain(tmp_path, kind, batch, chain):
    sessions, fired = 0, []
    for fault in chain + [None] * 4:
        study, done, hit = session(tmp_path, kind, batch, fault)
        sessions += 1
        if fault is not None and not done:
            fired.append(hit)
        if done:
            return study, sessions, fired
    raise AssertionError("the run never finished")


# rl-phase and rl-separate resume through the same journal and checkpoint code as rl-combined: slow
@pytest.mark.parametrize("kind", [k if k not in ("rl-phase", "rl-separate") else pytest.param(k, marks=pytest.mark.slow)
                                  for k in KINDS])
def test_resume_after_any_crash_gives_the_uninterrupted_run(tmp_path, tmp_path_factory, kind):
    """Crash after crash (every kind of point, see CHAIN), resumed each time: the journal ends up equal
    to the uninterrupted run's, and so does the strategy's state (its next proposal)."""
    batch = 2
    expected, next_ask = reference(tmp_path_factory, kind, batch)
    study, sessions, fired = run_chain(tmp_path, kind, batch, CHAIN)
    assert all(fired) and sessions > 3  # the faults did fire: a chain of crashed sessions, then a finished one
    records = Journal(tmp_path / "journal.jsonl").load()
    assert sequence(records) == expected
    assert study.strategy.ask() == next_ask
    assert load_state(tmp_path / "controller.pt")["trials"] == TRIALS


@pytest.mark.parametrize("kind, batch", [pytest.param("rl-combined", 1, marks=pytest.mark.slow),
                                         pytest.param("rl-combined", 3, marks=pytest.mark.slow),
                                         pytest.param("evolution", 3, marks=pytest.mark.slow), ("random", 3)])
def test_resume_after_any_crash_other_batch_sizes(tmp_path, tmp_path_factory, kind, batch):
    expected, next_ask = reference(tmp_path_factory, kind, batch)
    chain = [f for f in CHAIN if not (batch == 1 and f[0] == "journal" and f[2] == "line")]
    study, _, fired = run_chain(tmp_path, kind, batch, chain)
    assert all(fired)
    assert sequence(Journal(tmp_path / "journal.jsonl").load()) == expected
    assert study.strategy.ask() == next_ask


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_single_crash_point(tmp_path_factory, kind):
    """Exhaustive: one crash at each journal write (each cut), each checkpoint, each tell and each
    training of the run, then one resume: always the uninterrupted run."""
    batch = 2
    expected, next_ask = reference(tmp_path_factory, kind, batch)
    faults = [("journal", n, cut) for n in range(1, 6) for cut in ("none", "half", "line", "all")]
    trained = sum(status == "trained" for _, _, status, _, _ in expected)
    faults += [("checkpoint", n) for n in range(1, 6)] + [("tell", n) for n in range(1, TRIALS + 1)]
    faults += [("train", n) for n in range(1, trained + 1)]
    fired = 0
    for fault in faults:
        folder = tmp_path_factory.mktemp("crash")
        _, done, hit = session(folder, kind, batch, fault)
        fired += hit
        if not done:
            study, done, _ = session(folder, kind, batch, None)
            assert done and study.strategy.ask() == next_ask, fault
        assert sequence(Journal(folder / "journal.jsonl").load()) == expected, fault
    assert fired == len(faults)


def test_crash_between_journal_and_checkpoint_repeats_nothing(tmp_path, tmp_path_factory):
    """The tester's report: a crash after candidates #4 and #5 were journaled but before the controller
    checkpoint; the resumed run used to repeat their tokens as #6 and #7 (served from the cache)."""
    expected, _ = reference(tmp_path_factory, "rl-combined", 2)
    _, done, fired = session(tmp_path, "rl-combined", 2, ("checkpoint", 3))
    assert fired and not done
    assert len(Journal(tmp_path / "journal.jsonl").load()) == 6
    assert load_state(tmp_path / "controller.pt")["trials"] == 4  # the checkpoint is behind the journal
    _, done, _ = session(tmp_path, "rl-combined", 2, None)
    records = Journal(tmp_path / "journal.jsonl").load()
    assert done and sequence(records) == expected
    assert [records[6].tokens, records[7].tokens] != [records[4].tokens, records[5].tokens]


def test_a_journal_without_replay_data_still_resumes(tmp_path, tmp_path_factory):
    """A journal written before the replay data was recorded: the proposals are costed again instead."""
    expected, next_ask = reference(tmp_path_factory, "rl-combined", 2)
    _, done, _ = session(tmp_path, "rl-combined", 2, ("journal", 4, "none"))
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    stripped = [{k: v for k, v in json.loads(line).items() if k != "replay"} for line in lines]
    (tmp_path / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stripped))
    (tmp_path / "controller.pt").unlink()  # an old controller.pt held numpy arrays: refused, deleted
    study, done, _ = session(tmp_path, "rl-combined", 2, None)
    assert done and len(stripped) == 6 and sequence(Journal(tmp_path / "journal.jsonl").load()) == expected
    assert study.strategy.ask() == next_ask


def test_a_journal_that_does_not_replay_is_refused(tmp_path):
    make_study(tmp_path, "random", 2).run()
    records = Journal(tmp_path / "journal.jsonl").load()
    other = make_study(tmp_path, "random", 2, seed=12)  # another seed: the journal is not this strategy's
    with pytest.raises(CodesignError, match="cannot resume: replaying the journal, candidate #0"):
        other.restore(records)
    interleaved = [records[0], records[0], records[1], records[1]]  # two runs writing one journal
    with pytest.raises(CodesignError, match="two searches"):
        make_study(tmp_path, "random", 2).restore(interleaved)
    records[1].replay["calls"] = [["tell", [[0], 1.0], {}]]
    with pytest.raises(CodesignError, match="not a strategy call"):
        make_study(tmp_path, "random", 2).restore(records)


# ---------------------------------------------------------------- the run-folder lock

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_search_on_a_live_run_fails_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with RunLock.acquire(out):  # a live run holds the folder
        for extra in ([], ["--resume"]):
            start = time.perf_counter()
            assert main(["search", *TINY, *FAST, "--trials", "2", "--out", str(out), *extra]) == 2
            assert time.perf_counter() - start < 5
            err = capsys.readouterr().err.strip()
            assert "\n" not in err and f"PID {os.getpid()}" in err and "one run per folder" in err
        assert (out / LOCK).read_text().strip() == str(os.getpid())
    assert (out / LOCK).read_text() == ""  # released: the PID is cleared


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    pid = dead_pid()
    (out / LOCK).write_text(f"{pid}\n")  # a run that was killed: its PID is left, the kernel dropped its lock
    lock = RunLock.acquire(out)
    try:
        assert lock.stale_pid == pid and (out / LOCK).read_text().strip() == str(os.getpid())
        with pytest.raises(CodesignError, match=f"PID {os.getpid()}"):
            RunLock.acquire(out)  # the lock is held again
    finally:
        lock.release()
    assert sorted(p.name for p in out.iterdir()) == [LOCK]


def test_a_failed_start_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    assert main(["search", "--board", "no-such-board", "--out", str(out)]) == 2
    assert "no-such-board" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # the lock's folders are removed again


# ---------------------------------------------------------------- stop signals

def test_stop_signals_raise_a_clean_stop_even_when_sigint_was_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a job a script started in the background
    try:
        for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
            with stop_signals():
                with pytest.raises(StopRequested) as stop:
                    signal.raise_signal(sig)
                assert stop.value.exit_code == code and isinstance(stop.value, KeyboardInterrupt)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # restored after the run
        with stop_signals():
            held = []
            with pytest.raises(StopRequested):
                with deferred_interrupt():  # journal + tell + checkpoint: a stop waits for the block to end
                    signal.raise_signal(signal.SIGTERM)
                    held.append("block finished")
            assert held == ["block finished"]
    finally:
        signal.signal(signal.SIGINT, before)


def children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines (from /proc)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out[int(entry)] = cmd
    return out


def running(pid: int, cmd: str) -> bool:
    """`pid` still runs `cmd` (not exited, not a zombie, not a reused PID)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        now = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return state != "Z" and now == cmd


def wait_gone(kids: dict[int, str], timeout: float) -> list[int]:
    end = time.time() + timeout
    while time.time() < end and any(running(p, c) for p, c in kids.items()):
        time.sleep(0.1)
    return [p for p, c in kids.items() if running(p, c)]


def kill_all(kids: dict[int, str]) -> None:
    for p, c in kids.items():
        if running(p, c):
            os.kill(p, signal.SIGKILL)


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_busy(pids: list[int], proc: subprocess.Popen, ticks: int = 30, timeout: float = 60.0) -> None:
    """Until each process has used `ticks` more CPU clock ticks (training) than when called."""
    start = {p: cpu_ticks(p) for p in pids}
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if all(cpu_ticks(p) - start[p] >= ticks for p in pids):
            return
        time.sleep(0.05)
    raise AssertionError("the workers did not start training")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file()}


def workers_of(pid: int, n: int, proc: subprocess.Popen, timeout: float = 90.0) -> dict[int, str]:
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        kids = children(pid)
        if sum("spawn_main" in c for c in kids.values()) >= n:
            return kids
        time.sleep(0.1)
    raise AssertionError(f"no {n} training workers")


@LINUX
def test_two_searches_on_one_folder_then_sigterm(tmp_path):
    """Two searches started together on one --out: one runs, the other fails at once naming its PID;
    so does a --resume of the live run. The run was started with SIGINT ignored (a background job
    of a script) and still stops cleanly on SIGTERM: exit 143, the resume command, a consistent
    journal, no worker left behind."""
    out = tmp_path / "run"
    cmd = search_cmd(out, *FAST, "--trials", "60", "--workers", "2")

    def background():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=background)
             for _ in range(2)]
    kids: dict[int, str] = {}
    try:
        end = time.time() + 60
        while all(p.poll() is None for p in procs) and time.time() < end:
            time.sleep(0.05)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        err = loser.stderr.read().strip()
        assert loser.returncode == 2 and "\n" not in err and f"PID {winner.pid}" in err, err
        start = time.time()
        again = subprocess.run(search_cmd(out, *FAST, "--trials", "60", "--resume"), capture_output=True, text=True,
                               timeout=60)
        assert again.returncode == 2 and f"PID {winner.pid}" in again.stderr and time.time() - start < 20
        assert len(again.stderr.strip().splitlines()) == 1
        wait_for_lines(out / "journal.jsonl", 1, winner)
        kids = workers_of(winner.pid, 2, winner)
        winner.send_signal(signal.SIGTERM)
        _, err = winner.communicate(timeout=60)
        assert winner.returncode == 143, err
        assert "stopped by SIGTERM" in err and "--resume" in err and "Traceback" not in err
        assert wait_gone(kids, 5) == []  # the workers (and the resource tracker) are gone
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        kill_all(kids)
    records = Journal(out / "journal.jsonl").load()
    assert [r.number for r in records] == list(range(len(records))) and records
    assert load_state(out / "controller.pt")["trials"] == len(records)
    assert (out / LOCK).read_text() == ""  # the lock was released


@LINUX
def test_sigkill_of_the_search_takes_its_workers_down(tmp_path):
    """kill -9 of the search while its two workers train: within seconds no child of it is left
    (workers, resource tracker) and nothing more is written into the run folder."""
    out = tmp_path / "run"
    proc = subprocess.Popen(search_cmd(out, *FAST, "--trials", "60", "--workers", "2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kids: dict[int, str] = {}
    try:
        wait_for_lines(out / "journal.jsonl", 1, proc)  # the first batch is done
        kids = workers_of(proc.pid, 2, proc)
        wait_busy([p for p, c in kids.items() if "spawn_main" in c], proc)  # both workers train the second batch
        proc.kill()
        proc.wait(timeout=30)
        before = snapshot(out)
        assert wait_gone(kids, 5) == []
        time.sleep(1.0)
        assert snapshot(out) == before  # nothing written after the kill
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_all(kids)
    assert (out / LOCK).read_text().strip() == str(proc.pid)  # left behind: the next run takes it over


def dying_trainer(network, dataset, data_dir, budget, model_path=None):
    """A training worker killed outright (the out-of-memory killer)."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_that_dies_is_one_line_not_a_traceback(tmp_path):
    evaluator = Evaluator(SPACE, load_board(BOARD), Reward("fps", 10_000.0, "soft"), budget=proxy_budget(1),
                          trainer=dying_trainer, workers=2)
    strategy = make_strategy("random", SPACE, seed=1)
    try:
        with pytest.raises(CodesignError, match="a training worker process died .* continue the run with --resume"):
            evaluator.evaluate([strategy.ask() for _ in range(2)], strategy, 0)
    finally:
        evaluator.close(kill=True)


# ---------------------------------------------------------------- a full disk, a read-only folder

def test_full_disk_or_read_only_folder_is_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    """A failure to write the journal (disk full), controller.pt (read-only) or a model checkpoint
    (torch's own disk-full error): exit 2 and one line naming the file, then --resume finishes the run."""
    import quant

    out = tmp_path / "run"
    args = ["search", *TINY, *FAST, "--trials", "4", "--seed", "2", "--out", str(out)]

    def fail_journal(self, data):
        os.write(self._fd, data[:len(data) // 3])  # part of the line reaches the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    real_save = torch.save

    def fail_torch_save(obj, f, *a, **k):
        if "controller.pt" in str(getattr(f, "name", f)):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_save(obj, f, *a, **k)

    def fail_model(model, network, path):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    faults = [(Journal, "_write", fail_journal, "journal.jsonl", "No space left on device"),
              (torch, "save", fail_torch_save, "controller.pt", "Read-only file system"),
              (quant, "save_checkpoint", fail_model, "model.pt", "No space left on device")]
    for i, (owner, name, fake, path, why) in enumerate(faults):
        with monkeypatch.context() as mp:
            mp.setattr(owner, name, fake)
            if name == "save_checkpoint":
                mp.setattr("codesign.search.training.shutil.disk_usage", lambda p: type("U", (), {"free": 0})())
            assert main(args + (["--resume"] if i else [])) == 2
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("codesign: error:")]
        assert err.strip().splitlines()[-1] in errors and len(errors) == 1 and "Traceback" not in err, err
        assert path in errors[0] and why in errors[0] and "--resume" in errors[0], errors
    assert main(args + ["--resume"]) == 0
    records = Journal(out / "journal.jsonl").load()
    assert [r.number for r in records] == [0, 1, 2, 3]
    assert len({tuple(r.tokens) for r in records}) == 4


# ---------------------------------------------------------------- files that would run code

class Payload:
    """Unpickling this runs a shell command (what a crafted controller.pt in a copied run folder did)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_controller_pt_is_refused_not_executed(tmp_path, capsys):
    from codesign.commands.search import CONFIG, SPACE, SearchConfig
    from codesign.search.space import load_space, save_space

    out = tmp_path / "run"
    out.mkdir()
    marker = tmp_path / "marker"
    cfg = SearchConfig(board="zc706", trials=2, epochs=1, workers=1, reward="soft", target_fps=10_000.0)
    (out / CONFIG).write_text(json.dumps(asdict(cfg)))
    save_space(load_space(context=Context(1, 8, 8, 10, board="zc706")), out / SPACE)
    (out / "journal.jsonl").write_text("")
    torch.save({"strategy": {}, "trials": 0, "elapsed_s": Payload(marker)}, out / "controller.pt")
    assert main(["search", "--board", "zc706", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "refusing to load the controller state" in err and "system" in err
    assert not marker.exists()


def test_a_crafted_model_checkpoint_is_refused_not_executed(tmp_path):
    import quant

    marker = tmp_path / "marker"
    torch.save({"format": "codesign.quant.checkpoint/1", "network": Payload(marker), "state_dict": {}},
               tmp_path / "model.pt")
    with pytest.raises(CodesignError, match="refusing to load the checkpoint"):
        quant.load_checkpoint(tmp_path / "model.pt")
    assert not marker.exists()
