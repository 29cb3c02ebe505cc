"""Pure formulas of numbers: no spec objects, no I/O, no torch. Each is registered with its metadata."""
