"""Measure: KPIs declared in metrics.yml (metrics.py), their statistics (stats.py), experiment
design and CUPED statistics (power.py, cuped.py), comparison, overlap, waterfall and priority
lists (compare.py), the segment validation report (report.py) and segment unit and data tests
(testing.py).

Imports: `segsql.run` and the stages below it.
"""
