"""Azure plumbing any function app could reuse: settings, storage clients, secrets, logging, HTTP helpers."""
