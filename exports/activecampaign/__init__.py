"""ActiveCampaign's API v3: the client, retries with backoff, and the per-account rate budget."""
