"""Test support: the local parts (ActiveCampaign simulator, Key Vault fake, Azurite launcher), the app
driven as the host drives it, profile generators, and the session-wide contract and leak checks."""
