"""Runtime backends: one contract, one module per implementation."""
