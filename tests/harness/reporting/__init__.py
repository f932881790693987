"""Reports of a run (summary.csv, summary.md, report.html) and comparisons of two runs."""
