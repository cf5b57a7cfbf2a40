"""The read-only console for admins and auditors at /console: server-rendered HTML, no scripts,
no external assets, signed in with an admin or audit:read client. Every page view is one audited
call like any other."""
