"""Readers and writers, one module per format, and the H5MD container (h5md.py)."""
