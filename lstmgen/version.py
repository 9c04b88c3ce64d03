"""The package version: one constant that every module stamping it into a file or --version imports."""

__version__ = "0.1.0"
