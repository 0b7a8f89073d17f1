"""How a testbench run maps to a verdict, without g++: stand-in testbench binaries (shell scripts)
that end like the real one does, and the degenerate-output warning."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from codesign.backend.csim import CsimError, degenerate_warnings, run_testbench, tb_mismatch_count


def fake_testbench(folder: Path, stdout: str, stderr: str, code: int) -> Path:
    """An executable that prints like the emitted testbench and exits with `code` (negative: killed by that signal)."""
    script = folder / "tb_fake"
    end = f"kill -{-code} $$" if code < 0 else f"exit {code}"
    script.write_text(f"#!/bin/sh\nprintf '{stdout}'\nprintf '{stderr}' >&2\n{end}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def run_fake(tmp_path: Path, stdout: str, stderr: str, code: int):
    binary = fake_testbench(tmp_path, stdout, stderr, code)
    return run_testbench(tmp_path, binary, tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "ref.txt")


def test_a_matching_run_is_a_result(tmp_path):
    run = run_fake(tmp_path, "tb: 4 frames, 0 mismatching\\n", "", 0)
    assert run.exit_code == 0 and not run.protocol_error and tb_mismatch_count(run.log) == 0


def test_the_testbench_mismatch_exit_code_is_a_result_not_a_crash(tmp_path):
    run = run_fake(tmp_path, "tb: 4 frames, 3 mismatching\\n", "tb: mismatch in frame 0: 1 of 10 outputs differ\\n", 2)
    assert run.exit_code == 2 and tb_mismatch_count(run.log) == 3


def test_a_stream_protocol_error_is_a_result(tmp_path):
    run = run_fake(tmp_path, "", "tb: frame 3: output is short\\n", 1)
    assert run.exit_code == 1 and run.protocol_error == "tb: frame 3: output is short"
    assert tb_mismatch_count(run.log) is None


@pytest.mark.parametrize(("stderr", "code", "match"), [
    ("tb: /x/in.txt: bad header (expected 64 elements per frame)\\n", 1, "exit code 1.*bad header"),
    ("tb: cannot open the reference /x/ref.txt\\n", 1, "cannot open the reference"),
    ("", -6, "exit code -6"),  # aborted (SIGABRT)
    ("", 139, "exit code 139"),
])
def test_file_errors_and_crashes_are_could_not_run(tmp_path, stderr, code, match):
    with pytest.raises(CsimError, match=match):
        run_fake(tmp_path, "", stderr, code)


def test_degenerate_outputs_warn():
    varied = np.array([[1, 5], [5, 1], [2, 3]])
    assert degenerate_warnings(varied, varied.argmax(axis=1)) == []
    same = np.array([[1, 5]] * 3)
    (warning,) = degenerate_warnings(same, same.argmax(axis=1))
    assert "all 3 samples give the same output codes" in warning and "proves little" in warning
    same_class = np.array([[1, 5], [0, 7], [2, 3]])
    (warning,) = degenerate_warnings(same_class, same_class.argmax(axis=1))
    assert "the same class (1)" in warning
    one = np.array([[1, 5]])
    assert degenerate_warnings(one, one.argmax(axis=1)) == []  # one sample proves nothing either way
