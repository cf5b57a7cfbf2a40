"""Where the gateway keeps its shared state: the audit log, the client registry, revocations,
the assertion replay cache, counters and shared status. One setting chooses the backend
(`--store` / `GATEWAY_STORE`): the embedded SQLite default, or PostgreSQL for several hosts.
Nothing outside this package knows which one it talks to."""
