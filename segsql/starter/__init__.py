"""`segsql init`: the starter config, metrics and segment library copied into a new project.

Imports: `segsql.errors` only.
"""
