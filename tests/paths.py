"""Where the tests find the repository's files, whatever folder a test module lives in."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The repository's root (README.md, docs/, policies/, gateway/, benchmarks/)."""

SHARED = REPO.parent / "shared"
"""The shared folder beside the repository (benchmark data, test vectors), when present."""
