"""Table storage of the product: configuration records, runs and their pieces, the active-run lock."""
