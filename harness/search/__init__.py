"""Hunt mode: explore the spec space for disagreements, shrink each to a minimal case, group them by
cause with a rule over spec features, and write standalone repro scripts (`convparity search`);
the same grouping for an existing run's failures (`convparity triage`).

    explore.py      what to run next: fresh draws and changes of failing or near-bound cases
    space.py        the spec space: draws and mutations
    evaluations.py  batches of cases through a sweep's executor, folded into observations
    observations.py one case on one backend: passed, failed which tensors, or nothing learnt
    shrink.py       greedy shrinking to a local minimum
    features.py     spec features; rules.py: the simplest rule separating failures from passes
    group.py        grouping failures by cause; check.py: rules checked on fresh cases
    repro_script.py standalone scripts; findings.py: findings.csv, findings.md
    search.py       `search(...)`; triage.py: `triage(run_dir)`
"""
