"""The controller checkpoint (`controller.pt`), written atomically: a snapshot of the strategy that may
lag behind the journal without harm (a resume replays the journal). It holds tensors and plain values
only and is read with `torch.load(weights_only=True)`: a run folder from elsewhere can never make us
execute a pickle."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hw_space.errors import CodesignError
from hw_space.files import atomic_output

STATE = "controller.pt"


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """torch.save atomically: a temporary file in the same folder, fsync'd, renamed over the old one.
    A failed write (disk full, read-only folder) is one CodesignError line naming the file."""
    import torch

    try:
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as fh:  # through a Python file: a full disk is an OSError, not torch's RuntimeError
                torch.save(state, fh)
    except OSError as exc:
        raise CodesignError(f"cannot write the controller state: {exc.strerror or exc}; the run stays resumable "
                            "(free the space or fix the folder, then add --resume)", source=str(path)) from None


_WITHOUT = "a run resumes from its journal alone: delete the file to resume (only the search time spent is lost)"


def load_state(path: str | Path) -> dict[str, Any] | None:
    """The saved controller state, or None when there is none yet. Loaded with weights_only=True
    (tensors and plain values): a file that would run code when unpickled is refused, one line."""
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise CodesignError(f"refusing to load the controller state: loading it would call {found.group(1)}, "
                                "and a controller checkpoint holds tensors and plain values only (this file was not "
                                f"written by this version of codesign); {_WITHOUT}", source=str(path)) from None
        raise CodesignError("cannot read the controller state (not a checkpoint of tensors and plain values; "
                            f"damaged?); {_WITHOUT}", source=str(path)) from None
    except Exception as exc:  # a damaged checkpoint: one line, not a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CodesignError(f"cannot read the controller state ({first}); {_WITHOUT}", source=str(path)) from None
    if not isinstance(state, dict):
        raise CodesignError("not a controller state (expected a dict)", source=str(path))
    return state


__all__ = ["STATE", "load_state", "save_state"]
