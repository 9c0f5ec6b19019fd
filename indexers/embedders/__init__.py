"""Embedder backends: a hashing embedder (no model, for tests), a local sentence-transformer, and a
persistent embedding cache that wraps any embedder.

Nothing heavy is imported here; import the backend module you need.
"""
