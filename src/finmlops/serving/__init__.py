"""serving package (being built)."""
