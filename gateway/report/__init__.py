"""The auditor report: one self-contained HTML file built from a verified audit log."""
