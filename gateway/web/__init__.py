"""HTML shared by the auditor report and the console: one Jinja2 environment (autoescaping on),
one stylesheet, and SVG charts drawn on the server. No scripts, no external assets."""
