"""The journal: append, reload, a torn last line ignored and cut, a damaged middle line refused; atomic state."""

import json

import pytest

from codesign.search.journal import Journal, TrialRecord, load_state, save_state
from hw_space.errors import CodesignError


def record(n: int, status: str = "trained") -> TrialRecord:
    return TrialRecord(number=n, tokens=[n, 1, 2], design={"network": {}, "hardware": {}}, network_hash=f"h{n}",
                       status=status, reward=0.5 + n / 100, accuracy=None if status == "pruned" else 0.9,
                       estimate={"fps": 1000.0 * (n + 1), "resources": {"LUT": 10}}, resampled=n % 3,
                       train_seconds=1.5, extra={"epochs": 2})


def test_append_and_reload(tmp_path):
    j = Journal(tmp_path / "run" / "journal.jsonl")
    for n in range(5):
        j.append(record(n, "pruned" if n == 3 else "trained"))
    j.close()
    again = Journal(tmp_path / "run" / "journal.jsonl").load()
    assert [r.number for r in again] == list(range(5))
    assert again[3].status == "pruned" and again[3].accuracy is None and again[3].feasible is False
    assert again[4] == record(4) and again[4].fps == 5000.0
    lines = (tmp_path / "run" / "journal.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line)["number"] == i for i, line in enumerate(lines))


def test_torn_last_line_is_ignored_and_cut(tmp_path):
    path = tmp_path / "journal.jsonl"
    j = Journal(path)
    for n in range(3):
        j.append(record(n))
    j.close()
    full = json.dumps(record(3).to_dict())
    with open(path, "a") as fh:
        fh.write(full[: len(full) // 2])  # a crash in the middle of a write
    j = Journal(path)
    assert [r.number for r in j.load()] == [0, 1, 2]
    j.append(record(4))  # the next append starts on a clean line
    j.close()
    assert [r.number for r in Journal(path).load()] == [0, 1, 2, 4]


def test_unterminated_complete_line_counts_as_torn(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text(json.dumps(record(0).to_dict()) + "\n" + json.dumps(record(1).to_dict()))
    assert [r.number for r in Journal(path).load()] == [0]
    assert path.read_text().endswith("\n")


def test_damaged_middle_line_is_an_error(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text(json.dumps(record(0).to_dict()) + "\n{not json\n" + json.dumps(record(2).to_dict()) + "\n")
    with pytest.raises(CodesignError, match="line 2"):
        Journal(path).load()


def test_missing_journal_is_empty(tmp_path):
    assert Journal(tmp_path / "none.jsonl").load() == []


def test_state_save_is_atomic_and_reloads(tmp_path):
    path = tmp_path / "controller.pt"
    assert load_state(path) is None
    save_state(path, {"trials": 3, "strategy": {"rng": [1, 2, 3]}})
    save_state(path, {"trials": 4, "strategy": {"rng": [4]}})
    assert load_state(path) == {"trials": 4, "strategy": {"rng": [4]}}
    assert [p.name for p in tmp_path.iterdir()] == ["controller.pt"]  # no temporary file left behind
    path.write_bytes(b"garbage")
    with pytest.raises(CodesignError, match="controller state"):
        load_state(path)


def test_a_batch_is_one_write_and_a_failed_write_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "journal.jsonl"
    j = Journal(path)
    j.append_many([record(0), record(1)])
    real = Journal._write

    def full_disk(self, data):  # the disk fills up in the middle of the second batch's first line
        real(self, data[:40])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Journal, "_write", full_disk)
    with pytest.raises(CodesignError) as err:
        j.append_many([record(2), record(3)])
    assert str(path) in str(err.value) and "No space left on device" in str(err.value) and "--resume" in str(err.value)
    j.close()
    assert [r.number for r in Journal(path).load()] == [0, 1]  # the torn tail is cut: the run resumes cleanly


def test_state_write_on_a_full_disk_is_one_line_and_keeps_the_old_state(tmp_path, monkeypatch):
    import codesign.search.journal.checkpoint as journal

    path = tmp_path / "controller.pt"
    save_state(path, {"trials": 1})
    monkeypatch.setattr(journal, "open", lambda *a, **k: open("/dev/full", "wb"), raising=False)  # a real ENOSPC
    with pytest.raises(CodesignError, match="No space left on device") as err:
        save_state(path, {"trials": 2, "weights": __import__("torch").zeros(10_000)})
    assert str(path) in str(err.value) and "Traceback" not in str(err.value)
    monkeypatch.undo()
    assert load_state(path) == {"trials": 1} and [p.name for p in tmp_path.iterdir()] == ["controller.pt"]


def test_state_loads_tensors_and_plain_values_only(tmp_path):
    import numpy as np
    import torch

    path = tmp_path / "controller.pt"
    torch.save({"trials": 2, "rng": np.zeros(3)}, path)  # a numpy array: unpickling it needs a global
    with pytest.raises(CodesignError, match="refusing to load the controller state: loading it would call numpy"):
        load_state(path)
