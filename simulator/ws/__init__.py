"""The simulator's WebSocket market-data feeds: transport, sessions, the feed clock and dialects."""
