"""xlt's version: a leaf, so that what records it (provenance) need not import the package root."""

__version__ = "0.1.0"
