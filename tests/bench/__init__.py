"""Benchmarks: `make bench` (= `python -m tests.bench`). Not part of `make test`.

No module here is named test_*, and nothing here is a test function, so pytest never collects
them. Each benchmark prints one JSON object per line; the last line is the summary with the
targets and whether each is met. Everything runs on loopback: Azurite on free ports, the
ActiveCampaign simulator on 127.0.0.1, worker processes that stop when their run is final or at
their deadline.
"""
