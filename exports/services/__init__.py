"""Use cases: what a caller (the API, the timer, the CLI) may ask of the product.

Each takes the context (exports/context.py) and the caller, checks access (exports/access.py),
and raises domain errors only (exports/errors.py); the bindings render them.
"""
