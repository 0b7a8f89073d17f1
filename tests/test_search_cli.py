"""`codesign search` end to end on tiny budgets: the run folder, refusal to overwrite, Ctrl-C,
a crash (SIGKILL) followed by --resume that trains no network twice, and the exit code and last
line when no candidate was trained or the chosen design's emit or verify fails. The run-folder lock,
SIGTERM, worker clean-up and crash consistency are in test_search_robustness.py."""

import json
import os
import signal
import subprocess
import sys
import time
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from codesign.cli import main
from codesign.search.journal import Journal
from hw_space.design import load_design

TINY = ["--board", "zc706", "--epochs", "1", "--workers", "1", "--skip-hls"]


def search_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "codesign", "search", *TINY, "--out", str(out), *extra]


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"search ended early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)
    raise AssertionError("no journal progress")


def trained_twice(records) -> list[str]:
    counts = Counter(r.network_hash for r in records if r.status == "trained")
    return [h for h, c in counts.items() if c > 1]


def test_end_to_end_tiny_search(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", *TINY, "--trials", "6", "--seed", "3", "--strategy", "evolution", "--out", str(out)]) == 0
    for name in ("pareto.json", "pareto.csv", "pareto.png", "report.md", "journal.jsonl", "controller.pt",
                 "space.yaml", "config.json", "best/design.yaml", "best/model.pt", "best/model.onnx",
                 "best/test_data.npz"):
        assert (out / name).is_file(), name
    records = Journal(out / "journal.jsonl").load()
    assert [r.number for r in records] == list(range(6))
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert front and all(0 <= row["accuracy"] <= 1 and row["fps"] > 0 for row in front)
    csv_lines = (out / "pareto.csv").read_text().splitlines()
    assert len(csv_lines) == len(front) + 1 and csv_lines[0].startswith("number,network_hash,accuracy,fps")
    best = load_design(out / "best" / "design.yaml")
    assert best.network.content_hash() in {row["network_hash"] for row in front}
    data = np.load(out / "best" / "test_data.npz")
    assert {"x", "y", "logits", "x_int"} <= set(data.files) and len(data["y"]) == len(data["logits"])
    report = (out / "report.md").read_text()
    for section in ("## Search space", "## Candidates and pruning", "## Reward", "## Pareto front",
                    "## Chosen design", "## HLS (C-simulation)", "## Wall time per stage"):
        assert section in report
    assert "Skipped: --skip-hls was given" in report and "w = -0.07" in report
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    stdout = capsys.readouterr().out
    assert "candidates:" in stdout and "report:" in stdout
    assert stdout.strip().splitlines()[-1].startswith("OK: the chosen design #")  # --skip-hls is no failure
    assert "**Result: OK**" in report
    # the kept checkpoints are those of front networks only
    assert {p.name for p in (out / "models").iterdir()} <= {row["network_hash"] for row in front}


@pytest.mark.parametrize("mode", [pytest.param("phase", marks=pytest.mark.slow), "separate"])
def test_same_seed_same_run(tmp_path, mode, capsys):
    journals = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["search", *TINY, "--trials", "6", "--seed", "5", "--rl-mode", mode, "--out", str(out)]) == 0
        journals.append([(r.tokens, r.status, r.accuracy, r.reward, r.design) for r in
                         Journal(out / "journal.jsonl").load()])
    assert journals[0] == journals[1] and len(journals[0]) == 6
    assert (tmp_path / "a" / "pareto.csv").read_text() == (tmp_path / "b" / "pareto.csv").read_text()


def test_existing_run_folder_needs_resume(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "journal.jsonl").write_text("")
    assert main(["search", *TINY, "--trials", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--resume" in err and "--out" in err


def test_bad_space_file_is_one_line(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("network:\n  weight_bits: [0, 4]\n")
    assert main(["search", *TINY, "--space", str(space), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "network.weight_bits" in err


def test_resume_refuses_changed_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", *TINY, "--trials", "2", "--strategy", "random", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["search", *TINY, "--trials", "3", "--strategy", "evolution", "--out", str(out), "--resume"]) == 2
    assert "--strategy" in capsys.readouterr().err
    assert main(["search", *TINY, "--trials", "3", "--out", str(out), "--resume"]) == 0
    assert len(Journal(out / "journal.jsonl").load()) == 3


def test_kill_then_resume_trains_no_network_twice(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(search_cmd(out, "--trials", "10", "--seed", "1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_lines(out / "journal.jsonl", 4, proc)
        proc.send_signal(signal.SIGKILL)  # a crash: no chance to clean up
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = Journal(out / "journal.jsonl").load()
    assert 4 <= len(before) < 10
    done = subprocess.run(search_cmd(out, "--trials", "10", "--resume"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr and "taking over the lock" in done.stderr  # the killed run's lock
    records = Journal(out / "journal.jsonl").load()
    assert [r.number for r in records] == list(range(10))
    assert records[:len(before)] == before  # nothing journaled before the crash was redone or changed
    assert trained_twice(records) == []
    assert (out / "report.md").exists() and (out / "best" / "design.yaml").exists()


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(search_cmd(out, "--trials", "40"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for_lines(out / "journal.jsonl", 2, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    records = Journal(out / "journal.jsonl").load()
    assert records and (out / "journal.jsonl").read_text().endswith("\n")
    state = __import__("codesign.search.journal", fromlist=["load_state"]).load_state(out / "controller.pt")
    assert state["trials"] == len(records)  # the checkpoint matches the journal
    assert not (out / "report.md").exists()
    assert (out / ".lock").read_text() == ""  # the lock was released


def last_line(capsys) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_no_candidate_trained_is_a_failure(tmp_path, capsys):
    out = tmp_path / "run"
    # a latency no design reaches (an FPS target beyond the board's bound fails before the run, exit 2)
    assert main(["search", *TINY, "--trials", "2", "--target-latency-us", "0.1", "--out", str(out)]) == 1
    line = last_line(capsys)
    assert line.startswith("FAILED: no candidate was trained") and str(out / "report.md") in line
    assert "**Result: FAILED** - no candidate was trained" in (out / "report.md").read_text()


def fake_backend(emit: tuple[int, str, str], verify: tuple[int, str, str]):
    """Stands in for the `codesign emit` / `codesign verify` subprocesses: (exit code, stdout, stderr) of each."""
    calls: list[str] = []

    def run(cmd, **kwargs):
        step = cmd[3]  # python -m codesign STEP ...
        calls.append(step)
        code, stdout, stderr = {"emit": emit, "verify": verify}[step]
        return subprocess.CompletedProcess(cmd, code, stdout, stderr)

    return types.SimpleNamespace(run=run), calls


EMIT_OK = (0, "", "")


def test_the_chosen_design_must_verify_bit_exact(tmp_path, capsys, monkeypatch):
    """Exit 1, a FAILED last line and report.md's result line when emit or verify fails; OK otherwise."""
    from codesign.commands import search

    out = tmp_path / "run"
    best = out / "best"
    mismatch = json.dumps({"bit_exact": False, "samples": 12, "mismatches": 3, "problems": []})
    fake, calls = fake_backend(EMIT_OK, (1, mismatch, ""))
    monkeypatch.setattr(search, "subprocess", fake)
    run = search.SearchRun(search.SearchConfig(board="zc706", trials=2, epochs=1, workers=1), out)
    assert run.execute() == 1 and calls == ["emit", "verify"]
    line = last_line(capsys)
    assert line.startswith("FAILED: the chosen design #") and "did not verify bit-exact: 3 of 12 samples mismatch" in line
    assert "**Result: FAILED**" in (out / "report.md").read_text()
    assert json.loads((best / "verify.json").read_text())["bit_exact"] is False

    cases = [  # (emit, verify, succeeds, in the last line, in best/verify.json)
        ((2, "", "codesign: error: lowering failed\n"), None, False, "`codesign emit` failed: codesign: error: lowering "
         "failed", {"stage": "emit"}),
        (EMIT_OK, (3, json.dumps({"error": "g++ could not compile the testbench", "exit_code": 3}), ""), False,
         "could not build or run the C-simulation (exit code 3): g++ could not compile", {"exit_code": 3}),
        (EMIT_OK, (1, "", "Traceback (most recent call last):\nKeyError: 'x'\n"), False, "KeyError", {"stage": "verify"}),
        (EMIT_OK, (0, json.dumps({"bit_exact": True, "samples": 12, "mismatches": 0, "warnings": ["degenerate outputs"]}),
                   ""), True, "verified bit-exact in C-simulation (12 samples, with 1 warning(s)); run folder", {}),
    ]
    for emit, verify, succeeds, says, saved in cases:
        fake, calls = fake_backend(emit, verify)
        monkeypatch.setattr(search, "subprocess", fake)
        run._hls(best)
        assert run._report(None, 1.0) is succeeds
        line = last_line(capsys)
        assert line.startswith("OK: " if succeeds else "FAILED: ") and says in line, line
        verdict = json.loads((best / "verify.json").read_text())
        assert saved.items() <= verdict.items() and ("error" in verdict) is not succeeds
        report = (out / "report.md").read_text()
        assert f"**Result: {'OK' if succeeds else 'FAILED'}**" in report
    assert "- **warning**: degenerate outputs" in report


@pytest.mark.slow
def test_parallel_workers_search_with_hls(tmp_path):
    """Two worker processes, then the chosen design through emit + verify (when the backend is there)."""
    out = tmp_path / "run"
    env = dict(os.environ)
    done = subprocess.run([sys.executable, "-m", "codesign", "search", "--board", "zc706", "--trials", "16",
                           "--epochs", "3", "--workers", "2", "--out", str(out)], capture_output=True, text=True,
                          timeout=900, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("OK: the chosen design #")
    records = Journal(out / "journal.jsonl").load()
    assert len(records) == 16 and trained_twice(records) == []
    report = (out / "report.md").read_text()
    assert "## HLS (C-simulation)" in report
    if (out / "best" / "verify.json").exists():
        assert "C-simulation verdict" in report
    else:  # no fake verdict: the report says why there is none
        assert "Skipped:" in report or "No verdict" in report
