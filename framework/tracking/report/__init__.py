"""The sweep report: one self-contained HTML page (inline SVG, no script, no network) per sweep.

    data.py    the runs of a sweep folder (their run logs) or of a store (a parent run, an experiment)
    stats.py   grouping over seeds, mean +- std, Welch's test, smoothing and downsampling of curves
    svg.py     the project's one chart renderer (also the run's plots and the plugins' pictures)
    page.py    the HTML page: groups, curves, gradients, distributions, params

`python -m framework.report` is the command; every sweep writes its report.html at its end
(`framework.tracking.sweeps`) and logs it to its parent run.
"""
