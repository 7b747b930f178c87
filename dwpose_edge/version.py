"""The package version (one place: pyproject reads it, manifests and the export cache key record it)."""
__version__ = "0.1.0"
