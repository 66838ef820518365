"""Output sinks: one contract, one module per implementation."""
