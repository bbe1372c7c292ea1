"""Privacy by design: which columns are personal (pii.py: tags and column lineage), deterministic
masking of values in tables and free text (masking.py), and the right to erasure (erasure.py).

Imports: `segsql.engines` and the stages below it (runs and results import this, not the reverse).
"""
