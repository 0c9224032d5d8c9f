"""Names of the storage resources the app uses; the Bicep templates must create exactly these."""

SEGMENTS_QUEUE = "export-segments"
CHUNKS_QUEUE = "export-chunks"
POISON_SUFFIX = "-poison"  # the Functions host moves a message here after maxDequeueCount failures
SEGMENTS_POISON_QUEUE = SEGMENTS_QUEUE + POISON_SUFFIX
CHUNKS_POISON_QUEUE = CHUNKS_QUEUE + POISON_SUFFIX
QUEUES = (SEGMENTS_QUEUE, CHUNKS_QUEUE, SEGMENTS_POISON_QUEUE, CHUNKS_POISON_QUEUE)

# Working files of runs: contacts partitioned for the workers, and the rejects of each run.
RUNS_CONTAINER = "export-runs"
# Where the customer-data platform lands segments by default; an export may name any container.
SEGMENTS_CONTAINER = "segments"
# Each export's sync state: what it last delivered to its list, a digest per contact, in shards.
SYNC_STATE_CONTAINER = "export-sync-state"
CONTAINERS = (RUNS_CONTAINER, SEGMENTS_CONTAINER, SYNC_STATE_CONTAINER)

CONNECTIONS_TABLE = "connections"
EXPORTS_TABLE = "exports"
RUNS_TABLE = "runs"  # partition per run: the run itself and one entity per segment blob and per chunk
EXPORT_RUNS_TABLE = "exportruns"  # partition per export: its runs newest first, and its active-run lock
RATE_BUDGETS_TABLE = "ratebudgets"  # one entity per ActiveCampaign account: the next free send times
TABLES = (CONNECTIONS_TABLE, EXPORTS_TABLE, RUNS_TABLE, EXPORT_RUNS_TABLE, RATE_BUDGETS_TABLE)

STORAGE_CONNECTION = "AzureWebJobsStorage"  # the connection setting prefix every trigger binds to
