"""Where chunks live: record types, the Embedder and SearchIndex ports, and their backends.

`indexers` imports none of the other packages of the project (see DESIGN.md).
"""
