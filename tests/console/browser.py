"""A real browser for the tests: Debian's Chromium (/usr/bin/chromium) driven by Playwright's
Python API. Playwright's own browser download is never used. Tests that need it skip, saying
why, where Chromium or Playwright is missing."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")


def spki_pin(certificate: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of a certificate: the form Chromium's
    --ignore-certificate-errors-spki-list takes (the test server's own key, nothing else)."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def launch_chromium(*args: str) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's package (`apt-get install -y chromium`) "
            "to run the browser tests"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is missing: `pip install -e '.[dev]'`"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(args))
        try:
            yield browser
        finally:
            browser.close()
