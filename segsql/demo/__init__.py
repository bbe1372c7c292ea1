"""Synthetic B2B SaaS data for demos, tests and benchmarks (deterministic for a seed)."""
