"""The `segsql docs` catalog: static HTML pages per segment (site.py) with SVG lineage graphs
and size charts (svg.py).

Imports: `segsql.methods` and the stages below it; never the `Project` facade.
"""
