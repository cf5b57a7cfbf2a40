"""Desensitization: transforms on pandas columns and the materialized views they build.

Knows nothing of HTTP. Transforms are pure: they never mutate their input.
"""
