"""Leak tracing: which recipient a leaked extract came from, and which logged calls released it
(docs/audit.md#tracing-a-leaked-extract)."""
