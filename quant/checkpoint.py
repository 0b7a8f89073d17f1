"""Checkpoints: the Network (as its YAML dict) plus the model's state_dict, so a reload rebuilds the same model."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from hw_space.design import Network, design_from_dict
from hw_space.errors import CodesignError
from quant.build import QuantNet, build
from quant.files import atomic_output

FORMAT = "codesign.quant.checkpoint/1"


def save_checkpoint(model: torch.nn.Module, network: Network, path: str | Path) -> Path:
    """Write the network dict and state_dict to `path` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    payload = {"format": FORMAT, "network": network.to_dict(), "state_dict": model.state_dict()}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path) -> tuple[QuantNet, Network]:
    """Rebuild the model of a checkpoint (eval mode) and its validated Network."""
    path = Path(path)
    try:  # weights_only: tensors and plain values; a pickle that would run code is refused, never executed
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CodesignError("checkpoint not found", source=str(path)) from None
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise CodesignError(f"refusing to load the checkpoint: loading it would call {found.group(1)}, and a "
                                "codesign checkpoint holds tensors and plain values only", source=str(path)) from None
        raise CodesignError("not a readable checkpoint: UnpicklingError", source=str(path)) from None
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise CodesignError(f"not a readable checkpoint: {type(exc).__name__}", source=str(path)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CodesignError(f"not a codesign checkpoint (expected format {FORMAT})", source=str(path))
    state = payload.get("state_dict")
    if not isinstance(payload.get("network"), dict) or not isinstance(state, dict) or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CodesignError("not a codesign checkpoint (expected a network dict and a state_dict of tensors)",
                            source=str(path))
    network = design_from_dict({"network": payload["network"]}, source=str(path)).network
    model = build(network)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CodesignError(f"weights do not match the stored network: {str(exc).splitlines()[0]}",
                            source=str(path)) from None
    model.eval()
    return model, network
