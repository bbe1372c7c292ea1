"""Analysis methods from the segmentation field, on top of runs and metrics: experiment
readouts (with CUPED) and design (power, MDE), cohort retention, personas, clusters explained as
SQL rules and propensity models (the `split()` and `rfm()` template helpers live in compile/,
since segments call them).

Imports: `segsql.activate` and the stages below it; never the `Project` facade.
"""
