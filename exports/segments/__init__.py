"""Segments: the blobs a customer-data platform writes, read row by row and mapped to contacts."""
