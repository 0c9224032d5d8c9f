"""The bindings: HTTP, timer and queue functions. Each parses its trigger, calls one service, renders the result.

Only this package (and the local queue host) imports azure.functions or builds an HTTP answer.
"""
