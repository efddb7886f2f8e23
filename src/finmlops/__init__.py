"""finmlops: daily market-direction models from data to an A/B test decided by statistics."""

__version__ = "0.1.0"
