"""Datasets: sources on disk, the demo generator and identifier checksums."""
