"""Signed, hash-chained audit log. Knows nothing of HTTP."""
