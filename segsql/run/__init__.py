"""Execute: a run validates, materialises each segment through an engine and swaps the
membership atomically (runner.py); results.py reads members, sizes and previews back; history.py
answers who entered and left, and who was a member at a date.

Imports: `segsql.privacy`, `segsql.engines`, `segsql.compile`, `segsql.config`, `segsql.errors`.
"""
