"""A running gateway: everything it holds (`Services`, built once from Settings), the policy
reloader, and the per-process caches and counters the HTTP layer uses. Below the HTTP layer:
nothing here knows of Starlette."""
