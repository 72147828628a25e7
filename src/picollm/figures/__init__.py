"""Figures: read result files (TSV/JSON), draw PNGs. Nothing here trains or samples."""
