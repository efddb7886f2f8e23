"""models package (being built)."""
