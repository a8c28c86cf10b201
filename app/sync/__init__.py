"""Incremental sync: sources (a folder, an S3 prefix, a list of URLs) kept in step with a collection.

- `models`: a source, its entries' recorded state, a run and its per-entry outcomes (`Outcome`).
- `store`: the tables (`sources`, `source_entries`, `sync_runs`, `sync_run_entries`) in the state database, and the
  claim that lets one run per source go at a time.
- `listing`: listing and reading each kind of source, and the limits on what a source may name (RAG_SYNC_ROOTS,
  RAG_SYNC_S3_BUCKETS, RAG_SYNC_ALLOW_PRIVATE_URLS).
- `runner`: one run: compare, ingest what changed, remove what disappeared, record every outcome (resumable).
- `service`: what the API and `rag sync` call; a run is a job of `app.jobs` (the job worker hands it to the runner).

Nothing is imported here (the job runner imports `app.sync.runner`, and `app.sync.service` imports `app.jobs`).
Services are built by `app.composition` (`source_service`, `sync_runner`).
"""
