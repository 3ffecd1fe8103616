"""Report commands that work on a written ``matrix.json`` (no server is started)."""
