"""Which plotly.js the report inlines, and how big it is.

plotly's own Python package ships the full bundle (4.8 MB minified): inlined, a report is
over 5 MB. The charts here need only scatter and bar traces, which plotly.js's official
"basic" partial bundle (``plotly.js-basic-dist-min`` on npm, 1.2 MB) draws; ``make`` installs
it into the virtual environment (``<prefix>/share/finmlops/plotly-basic.min.js``) with npm.
Order: the ``report.plotly_js`` setting, that installed partial bundle, plotly's full bundle.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from finmlops.errors import ConfigError

PARTIAL_BUNDLE = "plotly-basic.min.js"
"""``package/plotly-basic.min.js`` of the npm package ``plotly.js-basic-dist-min``."""


@dataclass(frozen=True)
class PlotlyBundle:
    source: str
    """Where it came from, for the report's footer."""
    js: str


def installed_bundle() -> Path:
    """Where ``make`` puts the partial bundle: beside this environment's other shared files."""
    return Path(sys.prefix) / "share" / "finmlops" / PARTIAL_BUNDLE


def plotly_bundle(path: Path | None = None) -> PlotlyBundle:
    """The plotly.js to inline: ``path`` if given, else the installed partial bundle, else
    the full bundle of the plotly package."""
    if path is not None:
        try:
            return PlotlyBundle(f"{path.name} (report.plotly_js)", path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"report.plotly_js: cannot read {path} ({exc})") from None
    partial = installed_bundle()
    if partial.is_file():
        return PlotlyBundle(f"plotly.js basic partial bundle ({partial.name})",
                            partial.read_text("utf-8"))
    from plotly.offline import get_plotlyjs

    return PlotlyBundle("plotly.js full bundle from the plotly package (the partial bundle is "
                        "not installed: run `make venv`)", get_plotlyjs())
