"""The package version, at the bottom so that any module can name it without importing ``voxline``."""

__version__ = "0.1.0"
