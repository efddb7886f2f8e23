"""tracking package (being built)."""
