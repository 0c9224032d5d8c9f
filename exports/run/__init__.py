"""The run's flow, one module per step, in the order data flows:

start   record the run and queue one message per segment blob
split   read one segment blob into per-bucket contact parts and a rejects part
plan    once every blob is split: one chunk per non-empty bucket, queued
send    one chunk: its bucket's contacts, deduplicated, in bulk imports within the account's budget
finish  once every chunk is done: the run's status, totals, errors and rejects report
cancel  stop a run on request: nothing more is sent, and it finishes "cancelled"

Beside them: messages (what the queues carry), files (the run's working blobs), batching (how a
chunk is cut into imports).
"""
