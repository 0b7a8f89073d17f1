"""codesign: hardware/neural-network co-design for FPGAs."""

__version__ = "0.1.0"
