"""Getting documents in: sources -> parsing -> chunking -> (embed + index); sync state; Prefect flows."""
