"""File handling shared by every command.

Atomic file output: write to a temporary file in the target folder, then rename over the target,
so a crash or Ctrl-C never leaves half a file under the real name. Output checks (run before any
slow work) and the YAML reader turn every unusable path or file into one CodesignError line.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hw_space.errors import CodesignError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success fsync it, give it ordinary permissions and
    rename it to `path`; on any error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)


# ---------------------------------------------------------------- checking outputs before the work

def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists (the folder new entries would be created in)."""
    current = path
    while not os.path.lexists(current) and current != current.parent:
        current = current.parent
    return current


def _probe(folder: Path, path: Path, what: str) -> None:
    """Create and delete a temporary file in `folder`: the only test that also sees read-only file
    systems and works for root (os.access does not)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".codesign-probe-")
    except OSError as exc:
        where = "" if folder == path else f" (in {folder})"
        raise CodesignError(f"{what}: cannot write{where}: {exc.strerror or exc}; allowed: a path in a folder "
                            "you can write to", source=str(path)) from None
    os.close(fd)
    os.unlink(name)


def _check_parents(path: Path, what: str) -> Path:
    """The existing folder the output will be created under; one line when a parent is a file."""
    anchor = _nearest_existing(path.parent if path.parent != path else path)
    if not anchor.is_dir():
        raise CodesignError(f"{what}: {anchor} is a file, not a folder, so nothing can be created under it; "
                            "allowed: a path whose parents are folders", source=str(path))
    return anchor


def check_output_folder(path: str | Path, what: str = "--out", replace: bool = False) -> None:
    """Before any slow work: `path` can be used as an output folder (an existing folder we can write
    into, or a new one we can create), else one CodesignError line naming the path. With `replace`
    the folder is written next to `path` and renamed over it, so its parent must be writable."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise CodesignError(f"{what}: exists and is not a folder; allowed: a folder (existing or new)",
                            source=str(path))
    if path.is_dir() and not replace:
        _probe(path, path, what)
        return
    _probe(_check_parents(path, what), path, what)


def check_output_file(path: str | Path, what: str = "--out") -> None:
    """Before any slow work: `path` can be written as a file (not a folder, its folder writable),
    else one CodesignError line naming the path."""
    path = Path(path)
    if path.is_dir():
        raise CodesignError(f"{what}: is a folder; allowed: a file path (e.g. {path / 'design.yaml'})",
                            source=str(path))
    if os.path.lexists(path) and not path.is_file():
        raise CodesignError(f"{what}: exists and is not a regular file; allowed: a file path", source=str(path))
    _probe(_check_parents(path, what), path, what)


def os_error_line(exc: OSError) -> str:
    """An OSError as one line naming the path: 'PATH: cannot write: Permission denied'."""
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{' -> '.join(names)}: {reason}" if names else reason


# ---------------------------------------------------------------- reading YAML

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 32 else f"{text[:28]}...({len(text)} characters)"


def check_plain_values(data: Any, source: str) -> None:
    """Every number in parsed YAML is finite and fits in int64 (else one CodesignError line naming
    the field); shared structures (YAML aliases) are visited once."""
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise CodesignError(f"{where or 'top level'}: {_short(value)} is out of range; allowed: integers "
                                    f"that fit in 64 bits ({INT64_MIN}..{INT64_MAX})", source=source)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise CodesignError(f"{where or 'top level'}: {value} is not allowed; allowed: finite numbers "
                                    "(no .nan or .inf)", source=source)
        elif isinstance(value, (dict, list)):
            if id(value) in seen:
                continue
            seen.add(id(value))
            if isinstance(value, dict):
                for key, item in value.items():
                    stack.append((key, f"{where} (a key)" if where else "a key"))
                    stack.append((item, f"{where}.{key}" if where else str(key)))
            else:
                stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))


def load_yaml_file(path: str | Path) -> Any:
    """Read a YAML file, turning a missing, unreadable, binary or non-UTF-8 file, bad syntax and
    non-finite or out-of-int64 numbers into one CodesignError line naming the file."""
    import yaml

    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CodesignError("file not found", source=source) from None
    except IsADirectoryError:
        raise CodesignError("is a folder; allowed: a YAML file", source=source) from None
    except OSError as exc:
        raise CodesignError(f"cannot read: {exc.strerror or exc}", source=source) from None
    if b"\x00" in raw:
        raise CodesignError("is a binary file (it contains NUL bytes); allowed: a UTF-8 YAML text file", source=source)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise CodesignError(f"line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8 text; allowed: a UTF-8 YAML "
                            "text file", source=source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1
        char = ord(exc.character) if isinstance(exc.character, str) else int(exc.character)
        raise CodesignError(f"line {line}: control character #x{char:04x} is not allowed; allowed: printable "
                            "UTF-8 text", source=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise CodesignError(f"{where}{problem}", source=source) from None
    except RecursionError:
        raise CodesignError("nested too deeply; allowed: a design, board or space YAML file", source=source) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date like 2024-13-45, an int of 5000 digits
        raise CodesignError(f"invalid value: {exc}", source=source) from None
    check_plain_values(data, source)
    return data
