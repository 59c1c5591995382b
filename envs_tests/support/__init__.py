"""Test helpers that are not tests: the fault-injecting OpenAI-compatible server."""
