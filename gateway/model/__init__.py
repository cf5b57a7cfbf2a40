"""The shared model: what datasets, columns and grants are (plain frozen data, no I/O).

Every other package may import it; it imports nothing else from the gateway, so adding a field
here never creates an import cycle (docs/architecture.md)."""
