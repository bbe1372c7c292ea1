"""Synthetic B2B SaaS data and `segsql demo` (deterministic for a seed).

Imports: the `Project` facade and the stages below it; only the CLI and the notebook layer
import this.
"""
