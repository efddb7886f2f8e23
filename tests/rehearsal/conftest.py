"""Fixtures of the rehearsal: the serving tests' nginx balancer is reused from there."""

from __future__ import annotations

import sys
from pathlib import Path

SERVING_TESTS = Path(__file__).resolve().parents[1] / "serving"
if str(SERVING_TESTS) not in sys.path:
    sys.path.insert(0, str(SERVING_TESTS))
