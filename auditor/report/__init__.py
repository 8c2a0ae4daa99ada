"""Audit reports: the JSON/CSV export (plain data) and the PDF/A-3b rendering (WeasyPrint)."""
