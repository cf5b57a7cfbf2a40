"""HTTP: handlers, problem+json errors and the audit middleware."""
