"""Activate: what happens with members after a run: run hooks (hooks.py), exports for CRM and
campaign tools (exports.py), and the membership diff of a git revision (gitdiff.py, diffreport.py).

Imports: `segsql.measure` and the stages below it.
"""
