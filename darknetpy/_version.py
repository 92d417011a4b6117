"""The package version: the only place it is written (pyproject.toml reads it)."""
__version__ = "0.1.0"
