"""Weights: the manifest, verified downloads, first-use records and safe checkpoint loading."""
