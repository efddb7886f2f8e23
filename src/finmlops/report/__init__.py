"""report package (being built)."""
