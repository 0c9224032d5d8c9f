"""Export customer segments from Blob Storage to ActiveCampaign lists."""
