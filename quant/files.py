"""Atomic file output, shared with hw_space (which cannot import torch-side code)."""

from hw_space.files import atomic_output, atomic_write_text

__all__ = ["atomic_output", "atomic_write_text"]
