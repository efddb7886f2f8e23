"""The report's glossary: what each statistic means, in a sentence or two."""

from __future__ import annotations

import html

TERMS: tuple[tuple[str, str], ...] = (
    ("Active return", "The strategy's daily net return minus the benchmark's on the same day. "
     "Its total is compounded: (1 + strategy total) / (1 + benchmark total) - 1."),
    ("Exposure-matched benchmark", "Buy-and-hold scaled to the strategy's mean position, the "
     "rest in cash. A strategy long 80% of the time beats it only by timing, not by beta."),
    ("Alpha, beta", "From regressing the strategy's excess returns on buy-and-hold's: beta is "
     "the market exposure, alpha the return left over (annualised here). Its t uses "
     "Newey-West (HAC) standard errors, robust to autocorrelation and heteroskedasticity."),
    ("IR (information ratio)", "Mean active return over its standard deviation (tracking "
     "error), annualised: the Sharpe ratio of beating the benchmark."),
    ("PSR", "Probabilistic Sharpe ratio (Bailey & López de Prado 2012): the probability that "
     "the true Sharpe ratio is above 0 given the sample's length, skewness and kurtosis."),
    ("DSR", "Deflated Sharpe ratio (Bailey & López de Prado 2014): the PSR against the Sharpe "
     "ratio the best of N unskilled trials would show by luck, N being every configuration "
     "tried. The verdict uses the DSR of active returns."),
    ("MinTRL", "Minimum track record length: how many days of this Sharpe ratio (with these "
     "moments) it takes for the PSR to reach 95%."),
    ("Sharpe-ratio difference test", "Ledoit & Wolf (2008): is the strategy's Sharpe ratio "
     "above the benchmark's, allowing for correlated, fat-tailed, autocorrelated returns? "
     "Jobson-Korkie with Memmel's correction is the same question for iid normal returns."),
    ("PBO", "Probability of backtest overfitting (Bailey et al. 2017), by combinatorially "
     "symmetric cross-validation: how often the trial that looks best in one half of the "
     "history ranks at or below the median in the other half. About 0.5 means the choice is "
     "luck."),
    ("McNemar, Diebold-Mariano, DeLong", "Forecast tests on the same days: McNemar compares "
     "hits with always-up's exactly; Diebold-Mariano compares mean log-loss with a naive "
     "forecast's; DeLong gives the AUC's standard error."),
    ("VaR, CVaR", "Historical value at risk: the one-day loss exceeded on 5% (1%) of days; "
     "conditional VaR: the average loss on those days."),
    ("SRM", "Sample ratio mismatch (A/B section): the arms did not get the traffic shares the "
     "experiment set, so their comparison may be biased."),
    ("Confidence sequence", "A confidence interval valid at every day of an A/B test at once, "
     "so it may be watched daily and stopped when it excludes zero (always-valid p)."),
)


def glossary_html() -> str:
    items = "".join(f"<dt>{html.escape(t)}</dt><dd>{html.escape(d)}</dd>" for t, d in TERMS)
    return f"<h2 id='glossary'>Glossary</h2><dl class='glossary'>{items}</dl>"
