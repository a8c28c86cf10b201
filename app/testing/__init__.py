"""Test support for ragstack (like `haystack.testing`): importable by tests, benchmarks and scripts.

- `servers`: one helper (`server_process`) to run a process on a free port, wait until it is ready and stop it, and
  the recipes built on it (`rag serve`, `rag worker`, llama.cpp server, Redis, Prometheus, a throwaway PostgreSQL);
- `fakes`: fault-injecting fake HTTP servers (`FakeOllama`, `FakeOpenAI`) sharing one fault API;
- `fault_injecting_converter`: a converter component that hangs, spins or crashes on a marker;
- `slow_chat_generator`: a stand-in LLM that takes its time under one lock, as llama.cpp does;
- `profiles`: writable, optionally edited copies of the shipped pipeline profiles;
- `api`: API-key headers and job polling for REST tests;
- `corpus` and `plugin`: the pytest fixtures (`pytest_plugins = ["app.testing.plugin"]`).

Nothing in the product imports this package; it is not part of the shipped pipelines.
"""
