"""`rag` command line: ingest files, ask questions, list collections (serve comes with the REST API)."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from haystack.dataclasses import StreamingChunk
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.cluster import DeploymentError
from app.composition import Services, build_services, embedded_job_runner, job_service, key_store, source_service
from app.errors import RagError, UpstreamError
from app.pipeline_loader import PipelineLoadError
from app.services.api_keys import ALL_COLLECTIONS, KeyStore, Role, new_key, parse_scope
from app.services.query import rewrites_answers
from app.settings import Settings
from app.sync.models import Source, SourceKind
from app.sync.runner import ingest_adapter
from app.sync.service import SourceService

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="RAG backend: Haystack YAML pipelines, offline.")
console = Console()
err_console = Console(stderr=True)

LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}
SUPPORTED_SUFFIXES = {
    ".pdf",
    ".docx",
    ".txt",
    ".md",
    ".markdown",
    ".csv",
    ".html",
    ".htm",
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
}


def _services(settings: Settings | None = None) -> Services:
    """The same services the API builds (app.composition), so every limit in Settings applies here too."""
    try:
        return build_services(settings or Settings())
    except (PipelineLoadError, DeploymentError) as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES))
        else:
            files.append(path)
    return files


def _parse_tags(tags: list[str]) -> dict[str, str]:
    parsed = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--tag expects key=value, got {tag!r}")
        parsed[key.strip()] = value.strip()
    return parsed


@cli.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.")],
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="Target collection (default RAG_DEFAULT_COLLECTION).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="Metadata tag key=value (repeatable).")] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Index a new version of each file's source (its file name) even when its content is unchanged.",
        ),
    ] = False,
) -> None:
    """Index files (PDF, DOCX, TXT, MD, CSV, HTML, images) into a collection.

    A file is a version of its source (its file name): new content replaces the source's previous version (`updated`,
    only changed chunks are embedded again), the same content is `unchanged`."""
    tags = _parse_tags(tag or [])
    files = _expand(paths)
    if not files:
        err_console.print("[red]error:[/red] no files to ingest")
        raise typer.Exit(code=2)
    services = _services()
    collection = collection or services.settings.default_collection
    service = services.ingest
    pages = chunks = failed = 0
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task("files", total=len(files), stats="")
        for path in files:
            try:
                result = service.ingest_path(path, collection=collection, tags=tags, replace=replace)
            except RagError as error:
                err_console.print(f"[red]error:[/red] {error.message}")
                raise typer.Exit(code=2) from error
            pages += result.pages
            chunks += result.chunks
            if result.status == "failed":
                failed += 1
                progress.console.print(f"[red]failed[/red] {path.name}: {result.error}")
            else:
                version = f", version {result.version}" if result.version else ""
                changes = (
                    f" ({result.chunks_unchanged} unchanged, {result.chunks_added} added, "
                    f"{result.chunks_removed} removed)"
                    if result.status == "updated"
                    else ""
                )
                progress.console.print(
                    f"{result.status:9} {path.name}: {result.pages} pages, {result.chunks} chunks{changes}{version}"
                )
            progress.update(task, advance=1, stats=f"pages {pages} · chunks {chunks}")
    console.print(f"{len(files) - failed} of {len(files)} files ok, {pages} pages, {chunks} chunks -> '{collection}'")
    if failed:
        raise typer.Exit(code=1)


@cli.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="Collection (default RAG_DEFAULT_COLLECTION).")
    ] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", help="Passages (default RAG_DEFAULT_TOP_K).")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Print tokens as they are generated.")] = False,
    search_only: Annotated[bool, typer.Option("--search-only", help="Return passages only, no LLM call.")] = False,
    filters: Annotated[str | None, typer.Option("--filters", help="Haystack filter as JSON.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON.")] = False,
) -> None:
    """Answer a question from a collection, with numbered sources."""
    services = _services()
    services.pipelines.query.pipeline.warm_up()  # load the models before the clock starts
    service = services.query
    parsed_filters = None
    if filters:
        try:
            parsed_filters = json.loads(filters)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"--filters is not valid JSON: {error}") from error
    streamed: list[str] = []

    def on_chunk(chunk: StreamingChunk) -> None:
        if chunk.content:
            streamed.append(chunk.content)
            console.print(chunk.content, end="", markup=False, highlight=False, soft_wrap=True)

    try:
        result = service.ask(
            question,
            collection=collection or services.settings.default_collection,
            top_k=top_k,
            filters=parsed_filters,
            generate=not search_only,
            # a claim checker that may drop sentences or refuse: print the checked answer, not the raw tokens
            streaming_callback=on_chunk
            if stream and not as_json and not rewrites_answers(service.pipelines.query.pipeline)
            else None,
        )
    except RagError as error:
        err_console.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(code=2) from error
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "answer": result.answer,
                    "refused": result.refused,
                    "claims": [asdict(claim) for claim in result.claims],
                    "timings_ms": result.timings_ms,
                    "sources": [source.__dict__ for source in result.sources],
                }
            )
        )
        return
    if result.answer is not None:
        if streamed:
            shown = "".join(streamed).rstrip()
            # a citation inferred after generation (CitationAttributor) is appended to the streamed text
            tail = result.answer[len(shown) :] if result.answer.startswith(shown) else ""
            console.print(tail, markup=False, highlight=False)
        else:
            console.print(result.answer, markup=False, highlight=False)
    console.print()
    for source in result.sources:
        page = f", page {source.page}" if source.page else ""
        mark = "*" if source.cited else " "
        snippet = " ".join(source.text.split())[:160]
        console.print(f"{mark}[{source.n}] {source.filename}{page}: {snippet}", markup=False, highlight=False)
    t = result.timings_ms
    console.print(
        f"retrieval {t['retrieval']:.0f} ms · generation {t['generation']:.0f} ms · total {t['total']:.0f} ms",
        style="dim",
    )


@cli.command()
def collections() -> None:
    """List collections with their document and chunk counts."""
    table = Table("collection", "documents", "chunks")
    for info in _services().collections.list():
        table.add_row(info.name, str(info.documents), str(info.chunks))
    console.print(table)


def _advance_on_question(progress: Progress, task: TaskID, step: str) -> None:
    if not step.startswith("indexed "):
        progress.advance(task)


@cli.command("eval")
def evaluate(
    eval_set: Annotated[Path, typer.Argument(help="JSONL eval set (see docs/evaluation.md).")],
    pipelines: Annotated[
        list[Path] | None, typer.Option("--pipelines", "-p", help="Pipeline dir; give two for an A/B comparison.")
    ] = None,
    corpus: Annotated[Path | None, typer.Option(help="Corpus folder (default: corpus/ beside the set).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for results.json, report.md and the PNG plots.")] = Path(
        "eval-results"
    ),
    data_dir: Annotated[
        Path | None, typer.Option(help="Store for the eval corpus (default RAG_DATA_DIR/eval).")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(help="Questions of the dev or test split only, or all (default all; a gate file may set it)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions (of the split).")] = None,
    sample: Annotated[
        int | None,
        typer.Option(help="N questions evenly spaced over the split (answerable and unanswerable alike)."),
    ] = None,
    top_k: Annotated[int, typer.Option(help="Passages given to the LLM.")] = 5,
    search_only: Annotated[bool, typer.Option("--search-only", help="Retrieval metrics only (no LLM).")] = False,
    judge: Annotated[
        bool, typer.Option("--judge", help="Also LLM-judged faithfulness and context relevance (slow).")
    ] = False,
    gate: Annotated[Path | None, typer.Option(help="JSON thresholds; exit 1 when a metric is below.")] = None,
) -> None:
    """Evaluate pipelines on a question set: retrieval, answer, refusal and latency metrics (A/B with two dirs)."""
    from app.composition import eval_services
    from app.eval_report import console_table, split_table, write_reports
    from app.services.evaluation import Evaluator, load_eval_set, sample_questions, select_split

    settings = Settings()
    dirs = pipelines or [settings.pipelines_dir]
    if len(dirs) > 2:
        raise typer.BadParameter("give one or two --pipelines dirs")
    gate_spec = json.loads(gate.read_text()) if gate else {}
    limit = limit or gate_spec.get("limit")
    sample = sample or gate_spec.get("sample")
    split = split or gate_spec.get("split") or "all"
    if split not in ("dev", "test", "all"):
        raise typer.BadParameter(f"--split must be dev, test or all, not {split!r}")
    search_only = search_only or bool(gate_spec.get("search_only"))
    try:
        questions = sample_questions(select_split(load_eval_set(eval_set), split), sample)[:limit]
    except RagError as error:
        err_console.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(code=2) from error
    corpus_dir = corpus or eval_set.parent / "corpus"
    runs = []
    names = ["A", "B"] if len(dirs) == 2 else ["pipeline"]
    for name, directory in zip(names, dirs, strict=False):
        try:
            evaluator = Evaluator(eval_services(settings, directory, data_dir or settings.data_dir / "eval"))
        except (PipelineLoadError, DeploymentError) as error:
            err_console.print(f"[red]error:[/red] {error}")
            raise typer.Exit(code=2) from error
        with Progress(
            TextColumn(f"[bold]{name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console
        ) as progress:
            task = progress.add_task(name, total=len(questions))
            runs.append(
                evaluator.run(
                    questions,
                    corpus_dir,
                    name=f"{name}:{directory.name}",
                    top_k=top_k,
                    generate=not search_only,
                    judge=judge,
                    progress=functools.partial(_advance_on_question, progress, task),
                )
            )
    console.print(f"questions: {len(questions)} (split: {split})")
    console.print(console_table(runs))
    if any(run.metrics_by_split for run in runs):
        console.print(split_table(runs))
    if any(run.metrics_multi_turn for run in runs):
        console.print(multi_turn_table(runs))
    for path in write_reports(runs, eval_set, out):
        console.print(f"wrote {path}")
    failed = gate_failures(runs[0].metrics, gate_spec.get("thresholds", {}))
    if failed:
        err_console.print("[red]quality gate failed:[/red] " + "; ".join(failed))
        raise typer.Exit(code=1)
    if gate_spec:
        console.print("quality gate passed")


def multi_turn_table(runs: list[Any]) -> Table:
    """The multi-turn slice (questions with `history`): asked with their history (condensed) and alone (baseline)."""
    columns = [(f"{run.name} with history", run.metrics_multi_turn) for run in runs] + [
        (f"{run.name} alone", run.metrics_multi_turn_without_history) for run in runs
    ]
    count = len(runs[0].multi_turn_without_history)
    table = Table("metric", *(name for name, _ in columns), title=f"multi-turn slice ({count} follow-up questions)")
    for name in dict.fromkeys(n for _, values in columns for n in values):
        table.add_row(name, *("-" if values.get(name) is None else f"{values[name]:.3f}" for _, values in columns))
    return table


def gate_failures(metrics: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """The gate's failed checks: `name: x` is a minimum, `name_max: x` a maximum; a missing metric fails."""
    failed = []
    for key, limit in thresholds.items():
        name = key.removesuffix("_max")
        value = metrics.get(name)
        if value is None:
            failed.append(f"{name} missing (the questions asked do not measure it)")
        elif key.endswith("_max") and value > limit:
            failed.append(f"{name} {value:.3f} > {limit}")
        elif not key.endswith("_max") and value < limit:
            failed.append(f"{name} {value:.3f} < {limit}")
    return failed


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default RAG_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default RAG_PORT or 8000).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default RAG_WORKERS or 1).")] = None,
) -> None:
    """Serve the REST API with uvicorn; each worker loads and warms up the pipelines at start."""
    import uvicorn

    from app.serving import uvicorn_options

    settings = Settings()
    bind = host or settings.host
    if settings.dev_mode and bind not in LOOPBACK_HOSTS:
        err_console.print(f"[red]error:[/red] RAG_DEV_MODE (no auth) only serves on loopback, not on {bind}")
        raise typer.Exit(code=2)
    count = workers or settings.workers
    # uvicorn's own logging config is off: the app formats every record (JSON or console) and logs each request
    options: dict[str, Any] = {
        "host": bind,
        "port": port or settings.port,
        "log_config": None,
        "access_log": False,
        **uvicorn_options(settings),  # bounded header size and time, keep-alive
    }
    if count > 1:  # workers import the app factory themselves (the store is opened after the fork)
        _fresh_multiprocess_metrics_dir(settings)
        uvicorn.run("app.main:create_app", factory=True, workers=count, **options)
        return
    from app.main import create_app

    uvicorn.run(create_app(settings), **options)


def _fresh_multiprocess_metrics_dir(settings: Settings) -> None:
    """Several workers: prometheus-client's multiprocess mode, in a folder emptied at every start."""
    import shutil

    from app.metrics import MULTIPROC_ENV

    directory = Path(os.environ.get(MULTIPROC_ENV) or settings.data_dir / "prometheus-multiproc")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory.resolve())


keys_cli = typer.Typer(
    no_args_is_help=True,
    help="Create, list and revoke API keys (hashed in RAG_DATA_DIR/auth.db, or in PostgreSQL with RAG_STATE_URL).",
)
cli.add_typer(keys_cli, name="keys")


def _key_store() -> KeyStore:
    return key_store(Settings())


@keys_cli.command("create")
def keys_create(
    role: Annotated[
        Role, typer.Option(help="reader: query; writer: + upload/delete documents; admin: + collections and keys.")
    ],
    collections: Annotated[str, typer.Option(help="Comma-separated collections the key may use; * is all.")] = "*",
    name: Annotated[str, typer.Option(help="What the key is for.")] = "cli",
    tenant: Annotated[
        str | None,
        typer.Option(help="The tenant the key belongs to: it uses only its tenant's collections (none: the operator)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the key (for scripts).")] = False,
    principal: Annotated[
        list[str] | None,
        typer.Option(
            "--principal",
            help="Whose documents the key reads besides public ones (repeatable): user:<name>, group:<name>, or * "
            "(every document).",
        ),
    ] = None,
) -> None:
    """Create a key; the secret is printed once and stored only as a hash."""
    try:
        scope = parse_scope([c.strip() for c in collections.split(",") if c.strip()])
        created = _key_store().create(
            name=name, role=role, collections=scope, principals=principal or [], tenant=tenant
        )
    except RagError as error:
        err_console.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(code=2) from error
    assert created is not None
    key, secret = created
    if quiet:
        typer.echo(secret)
        return
    scope_text = ALL_COLLECTIONS if key.collections is None else ",".join(sorted(key.collections))
    reads = ",".join(sorted(key.principals)) or "public documents only"
    of_tenant = f", tenant {key.tenant}" if key.tenant is not None else ""
    typer.echo(
        f"created {key.prefix} ({key.role.value}, collections {scope_text}{of_tenant}, reads {reads}); "
        "it is not shown again:"
    )
    typer.echo(secret)


@keys_cli.command("generate")
def keys_generate() -> None:
    """Print a new well-formed key without storing it: the value of RAG_ADMIN_KEY (a secret of the deployment), which
    every API replica stores hashed as an admin key at start."""
    typer.echo(new_key()[1])


@keys_cli.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List keys (never their secrets)."""
    keys = _key_store().list(include_revoked=all_keys)
    tenants = any(key.tenant is not None for key in keys)  # the column only where tenants are used
    table = Table("id", "name", "role", "collections", *(["tenant"] if tenants else []), "created", "revoked")
    for key in keys:
        scope = ALL_COLLECTIONS if key.collections is None else ",".join(sorted(key.collections))
        tenant = [key.tenant or ""] if tenants else []
        table.add_row(key.id, key.name, key.role.value, scope, *tenant, key.created_at, key.revoked_at or "")
    console.print(table)


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (the part after `rag_`).")]) -> None:
    """Revoke a key; every server process refuses it from its next request."""
    try:
        key = _key_store().revoke(key_id.removeprefix("rag_").split("_")[0])
    except RagError as error:
        err_console.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(code=2) from error
    console.print(f"revoked {key.prefix} ({key.name})")


jobs_cli = typer.Typer(no_args_is_help=True, help="Background ingestion jobs (RAG_DATA_DIR/jobs.db).")
cli.add_typer(jobs_cli, name="jobs")


@jobs_cli.command("sweep")
def jobs_sweep() -> None:
    """Apply the job retention now (RAG_JOB_RETENTION_DAYS, RAG_JOB_HISTORY_DAYS); servers and workers also do it
    hourly."""
    settings = Settings()
    try:
        report = job_service(settings).sweep()
    except UpstreamError as error:  # RAG_BLOB_URL: a missing bucket, refused credentials, the storage down
        err_console.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(code=2) from error
    console.print(
        f"uploads of {report.uploads_removed} finished jobs removed (older than {settings.job_retention_days} days), "
        f"{report.jobs_deleted} jobs deleted (older than {settings.job_history_days} days), "
        f"{report.folders_removed} spool folders removed ({report.bytes_freed / 1_048_576:.1f} MiB)"
    )


sync_cli = typer.Typer(
    help="Sync sources: folders, S3 prefixes and URL lists kept in step with a collection (see docs/sync.md).",
)
cli.add_typer(sync_cli, name="sync")


def _sources() -> SourceService:
    settings = Settings()
    return source_service(settings, job_service(settings))


def _fail(error: RagError) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {error.message}")
    return typer.Exit(code=2)


def _run_here(run_ids: list[str]) -> None:
    """Run queued sync runs in this process (the pipelines loaded here), then print each one's counts."""
    if not run_ids:
        return
    services = _services()
    services.pipelines.indexing.pipeline.warm_up()
    runner = embedded_job_runner(services)
    for run_id in run_ids:
        if not runner.run(run_id):
            typer.echo(f"run {run_id}: taken by another worker (see `rag sync runs`)")
            continue
        run = services.sources.run(run_id)
        counts = ", ".join(f"{count} {outcome}" for outcome, count in run.counts.items())
        typer.echo(f"run {run_id}: {run.state}{f' ({run.error})' if run.error else ''}: {counts}")


@sync_cli.callback(invoke_without_command=True)
def sync_main(
    context: typer.Context,
    due: Annotated[bool, typer.Option("--due", help="Queue and run every source whose interval is due.")] = False,
    wait: Annotated[bool, typer.Option(help="Run the queued runs here (--no-wait: leave them to a worker).")] = True,
) -> None:
    """`rag sync --due` (from cron or a timer) runs the sources whose interval came round."""
    if context.invoked_subcommand is not None:
        return
    if not due:
        console.print(context.get_help())
        raise typer.Exit(code=0)
    try:
        started = _sources().enqueue_due()
    except RagError as error:
        raise _fail(error) from error
    typer.echo(f"{len(started)} due sources queued")
    if wait:
        _run_here(started)


@sync_cli.command("add")
def sync_add(
    collection: Annotated[str, typer.Argument(help="The collection the documents go into.")],
    folder: Annotated[str | None, typer.Option(help="A folder under RAG_SYNC_ROOTS.")] = None,
    s3: Annotated[str | None, typer.Option(help="s3://bucket/prefix (bucket in RAG_SYNC_S3_BUCKETS).")] = None,
    url: Annotated[list[str] | None, typer.Option(help="A URL to sync (repeat for several).")] = None,
    include: Annotated[list[str] | None, typer.Option(help="Glob of entries to sync (repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Glob of entries to leave out (repeatable).")] = None,
    interval: Annotated[int | None, typer.Option(help="Run every this many seconds (>= 60); none: manual.")] = None,
    access: Annotated[list[str] | None, typer.Option(help="user:<name> or group:<name> (repeatable).")] = None,
) -> None:
    """Register a source: exactly one of --folder, --s3, --url."""
    given = [
        (kind, value)
        for kind, value in ((SourceKind.FOLDER, folder), (SourceKind.S3, s3), (SourceKind.URLS, url))
        if value
    ]
    if len(given) != 1:
        err_console.print("[red]error:[/red] give exactly one of --folder, --s3, --url")
        raise typer.Exit(code=2)
    kind, location = given[0]
    try:
        source = _sources().create(
            collection=collection,
            kind=kind,
            location=location,
            include=include or [],
            exclude=exclude or [],
            interval_seconds=interval,
            access=access or None,
        )
    except RagError as error:
        raise _fail(error) from error
    typer.echo(source.id)


def _location(source: Source) -> str:
    return source.location if isinstance(source.location, str) else f"{len(source.location)} URLs"


@sync_cli.command("list")
def sync_list(collection: Annotated[str | None, typer.Option(help="Only this collection's sources.")] = None) -> None:
    """List the sources."""
    sources, _ = _sources().sources(collection=collection, limit=10_000)
    for source in sources:
        interval = f"every {source.interval_seconds} s" if source.interval_seconds else "manual"
        running = f"  (run {source.active_run})" if source.active_run else ""
        typer.echo(f"{source.id}  {source.collection}  {source.kind.value}  {interval}  {_location(source)}{running}")


@sync_cli.command("run")
def sync_run(
    source_id: Annotated[str, typer.Argument(help="The source id (src_...).")],
    wait: Annotated[
        bool, typer.Option(help="Run it here (--no-wait: queue it for the server's or a worker's).")
    ] = True,
) -> None:
    """Start a run of a source now."""
    try:
        run = _sources().start_run(source_id)
    except RagError as error:
        raise _fail(error) from error
    typer.echo(f"run {run.id} queued (job /jobs/{run.id})")
    if wait:
        _run_here([run.id])


@sync_cli.command("runs")
def sync_runs(
    source_id: Annotated[str, typer.Argument(help="The source id (src_...).")],
    limit: Annotated[int, typer.Option(help="Most recent runs shown.")] = 10,
    entries: Annotated[bool, typer.Option(help="Also each entry's outcome.")] = False,
) -> None:
    """A source's runs, newest first, with their counts (and per-entry outcomes)."""
    service = _sources()
    try:
        runs, total = service.runs(source_id, limit=limit)
    except RagError as error:
        raise _fail(error) from error
    for run in runs:
        counts = ", ".join(f"{count} {outcome}" for outcome, count in run.counts.items())
        why = f"  ({run.error})" if run.error else ""
        typer.echo(f"{run.id}  {run.trigger.value}  {run.state}  {counts}{why}")
    typer.echo(f"{len(runs)} of {total} runs")
    for run in runs if entries else []:
        for entry in service.run_entries(run.id):
            console.print(
                f"{run.id} {entry.outcome.value:9} {entry.key}" + (f"  ({entry.error})" if entry.error else "")
            )


@sync_cli.command("remove")
def sync_remove(
    source_id: Annotated[str, typer.Argument(help="The source id (src_...).")],
    remove_documents: Annotated[bool, typer.Option(help="Also remove the documents it ingested.")] = False,
) -> None:
    """Delete a source (its unfinished run cancelled); its documents stay unless --remove-documents."""
    try:
        if remove_documents:
            services = _services()
            source = services.sources.get(source_id)
            removed = services.sources.delete(
                source_id, remove_documents=True, ingest=ingest_adapter(services.ingest, source.collection)
            )
        else:
            removed = _sources().delete(source_id)
    except RagError as error:
        raise _fail(error) from error
    typer.echo(f"source {source_id} deleted ({removed} documents removed)")


@cli.command()
def worker(
    burst: Annotated[bool, typer.Option("--burst", help="Exit once the queue is empty.")] = False,
) -> None:
    """Run background ingestion jobs' files from the Redis queue (RAG_JOB_QUEUE=redis); the indexing pipeline loads once
    per process, `/metrics` on RAG_WORKER_METRICS_PORT, SIGTERM gives the file in progress back."""
    settings = Settings()
    if settings.job_queue != "redis":
        err_console.print(
            "[red]error:[/red] `rag worker` serves the Redis job queue: set RAG_JOB_QUEUE=redis and RAG_REDIS_URL "
            "(with the default RAG_JOB_QUEUE=embedded, `rag serve` runs the jobs itself)"
        )
        raise typer.Exit(code=2)
    from app.composition import load_pipeline_set
    from app.extras import MissingExtraError
    from app.jobs.workers import run_rq_worker
    from app.logs import configure_logging
    from app.memory import limit_malloc_arenas

    try:
        pipelines = load_pipeline_set(settings)
    except (PipelineLoadError, DeploymentError) as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    configure_logging(settings)
    limit_malloc_arenas(settings.malloc_arena_max)
    try:
        run_rq_worker(settings, pipelines, burst=burst)
    except MissingExtraError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    except UpstreamError as error:  # at start: RAG_BLOB_URL's bucket missing or its credentials refused
        err_console.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(code=2) from error


@cli.command()
def warmup() -> None:
    """Load both pipelines and their models once (reassembles and verifies the packaged LLM)."""
    services = _services()
    services.pipelines.warm_up()
    settings = services.settings
    console.print(
        f"pipelines from {settings.pipelines_dir} loaded and warmed up; data dir {settings.data_dir.resolve()}"
    )


def main() -> None:
    """Entry point of the `rag` script."""
    cli()
