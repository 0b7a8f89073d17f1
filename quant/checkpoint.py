"""Checkpoints: the Network (as its YAML dict) plus the model's state_dict, so a reload rebuilds the same model."""

from __future__ import annotations

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
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CodesignError("checkpoint not found", source=str(path)) from None
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise CodesignError(f"not a readable checkpoint: {type(exc).__name__}", source=str(path)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CodesignError(f"not a codesign checkpoint (expected format {FORMAT})", source=str(path))
    network = design_from_dict({"network": payload["network"]}, source=str(path)).network
    model = build(network)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CodesignError(f"weights do not match the stored network: {str(exc).splitlines()[0]}",
                            source=str(path)) from None
    model.eval()
    return model, network
