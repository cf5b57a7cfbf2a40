"""OAuth scopes, shared by the client registry, the policy files and the API."""

DATASETS_READ = "datasets:read"
AUDIT_READ = "audit:read"
ADMIN = "admin"
SCOPES = (DATASETS_READ, AUDIT_READ, ADMIN)
