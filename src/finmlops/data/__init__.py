"""data package (being built)."""
