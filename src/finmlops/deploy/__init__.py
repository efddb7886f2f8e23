"""deploy package (being built)."""
