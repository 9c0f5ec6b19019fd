"""Document sources: a local folder and Azure Blob Storage (DocumentSource port)."""
