"""Public-data authorized-operation gateway: usable but not visible."""

__version__ = "0.1.0"
