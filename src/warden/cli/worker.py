"""`warden worker`: moderate a Redis Stream of content events (see docs/events.md)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import typer

from warden.cli._common import DATABASE_URL_HELP, open_store

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def worker(
    policy: Path = typer.Option(Path("policies/default.yaml"), "--policy", "-p", help="Policy YAML file."),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    redis_url: str | None = typer.Option(None, "--redis-url",
                                         help=f"Redis URL. Default: env WARDEN_REDIS_URL, else {DEFAULT_REDIS_URL}."),
    input_stream: str = typer.Option("warden:content", help="Stream of content events (schema warden.content.v1)."),
    group: str = typer.Option("warden", help="Consumer group; every worker of one deployment uses the same."),
    consumer: str | None = typer.Option(None, help="This worker's consumer name (default: hostname-pid). Keep it "
                                        "stable across restarts to resume its own pending events at once."),
    output_stream: str = typer.Option("warden:decisions", help="Stream the decision events are published to."),
    dead_letter_stream: str = typer.Option("warden:content:dead", help="Stream for events that cannot be processed."),
    batch_size: int = typer.Option(256, min=1, max=10_000, help="Events per micro-batch."),
    moderation_threads: int | None = typer.Option(
        None, min=0, max=8, help="Batches moderated at once, with one more thread recording them (inference of "
        "one overlaps the Python work of another); 0: one thread. Default: 2 with two or more usable CPUs, else 0."),
    block_ms: int = typer.Option(1000, min=1, help="How long one read waits for new events."),
    claim_idle_ms: int = typer.Option(30_000, min=0, help="Claim events another worker left pending this long "
                                      "(a crashed worker's events)."),
    max_deliveries: int = typer.Option(5, min=1, help="Deliveries before an event goes to the dead-letter stream."),
    metrics_port: int | None = typer.Option(None, help="Serve Prometheus metrics on this port at /metrics."),
    metrics_host: str = typer.Option("127.0.0.1", help="Interface for the metrics endpoint."),
    archive_content: bool = typer.Option(False, help="Keep the text of moderated items (for backtests)."),
    max_events: int | None = typer.Option(None, min=1, help="Stop after this many events (tests, benchmarks)."),
    exit_when_idle: float | None = typer.Option(None, min=0.0, help="Stop after this many seconds without events."),
) -> None:
    """Consume content events from a Redis Stream with a consumer group, moderate them in
    micro-batches, store the decisions (with review tasks and enforcement actions) and
    publish decision events.

    At-least-once delivery with idempotent effects: a decision is stored once per (content
    id, policy version) however often its event is delivered. Events of crashed workers are
    claimed after --claim-idle-ms; an event failing --max-deliveries times goes to the
    dead-letter stream with its error. SIGTERM or Ctrl-C: the batches in flight are finished and
    acknowledged, then the worker exits. Webhooks are delivered when WARDEN_WEBHOOK_URL is set.
    """
    import redis as redis_lib

    from warden.cli.main import _fail, _load_moderator
    from warden.enforce.dispatcher import WebhookConfigError, WebhookDispatcher, WebhookSettings
    from warden.pipelines.record import DecisionRecorder
    from warden.pipelines.stream import StreamConfig, StreamWorker, WorkerMetrics, serve_metrics

    logging.basicConfig(level=os.environ.get("WARDEN_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    moderator = _load_moderator(policy)
    store = open_store(database_url)
    url = redis_url or os.environ.get("WARDEN_REDIS_URL") or DEFAULT_REDIS_URL
    client = redis_lib.Redis.from_url(url, socket_timeout=max(5.0, block_ms / 1000 + 5), socket_connect_timeout=5)
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        raise _fail(f"cannot reach Redis at {url}: {exc}. Start Redis or pass --redis-url.") from None
    try:
        webhooks = WebhookSettings.from_env()
    except WebhookConfigError as exc:
        raise _fail(f"webhooks: {exc}") from None
    dispatcher = WebhookDispatcher.from_settings(store, webhooks) if webhooks is not None else None

    config = StreamConfig(input_stream=input_stream, group=group, output_stream=output_stream,
                          dead_letter_stream=dead_letter_stream, batch_size=batch_size, block_ms=block_ms,
                          moderation_threads=moderation_threads if moderation_threads is not None
                          else (2 if len(os.sched_getaffinity(0)) >= 2 else 0),
                          claim_idle_ms=claim_idle_ms, max_deliveries=max_deliveries,
                          **({"consumer": consumer} if consumer else {}))
    metrics = WorkerMetrics()
    if metrics_port is not None:
        serve_metrics(metrics, host=metrics_host, port=metrics_port)
    recorder = DecisionRecorder(store, moderator.policy, archive_content=archive_content)
    stream_worker = StreamWorker(redis=client, moderator=moderator, recorder=recorder, config=config, metrics=metrics)

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        logging.getLogger("warden.worker").info("signal %d: finishing the batches in flight", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    typer.secho(f"worker {config.consumer}: {input_stream} (group {group}) -> {output_stream}; policy "
                f"{moderator.policy.name} {moderator.policy.version}", err=True)
    if dispatcher is not None:
        dispatcher.start()
    try:
        totals = stream_worker.run(stop, max_events=max_events, idle_exit_s=exit_when_idle)
    finally:
        if dispatcher is not None:
            dispatcher.stop()
        client.close()
        store.close()
    typer.secho(f"worker {config.consumer} stopped: {totals.read} events read, {totals.decided} decided "
                f"({totals.stored} newly stored), {totals.dead_lettered} dead-lettered, {totals.failed} failed, "
                f"{totals.claimed} claimed from other workers", err=True)
