"""Stand-ins shared by the test suite and the benchmarks: fake chat (Slack, Discord), LLM and
Slack servers on loopback, a canned-response HTTP server, an asyncio loop on a virtual clock and
the exchanges' recorded answers. Nothing here is shipped: the package is importable from the
repository root (``pythonpath`` in pyproject.toml for pytest, the working directory for
``make bench``), never installed into the image.
"""
