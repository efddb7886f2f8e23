"""abtest package (being built)."""
