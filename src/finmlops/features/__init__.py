"""features package (being built)."""
