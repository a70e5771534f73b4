"""Prometheus metrics. One registry per app (no global state; tests build many apps).

Labels are bounded: the route *template* (never the raw path), method, status, action,
surface (validated against the policy). No content, ids or keys ever become labels.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, PlatformCollector, ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "warden_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.request_latency = Histogram(
            "warden_http_request_duration_seconds",
            "HTTP request latency (time to the end of the response)",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "warden_decisions_total",
            "Decisions returned by /v1/moderate",
            ["action", "surface"],
            registry=self.registry,
        )
        self.moderation_latency = Histogram(
            "warden_moderation_duration_seconds",
            "Time in Moderator.moderate_batch per request (excludes parsing and storage)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "warden_moderation_batch_items",
            "Items per /v1/moderate request",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=self.registry,
        )
        self.shadow_items = Counter(
            "warden_shadow_items_total",
            "Items run by the shadow (candidate) policy, by outcome: stored, duplicate (already "
            "stored), failed (the shadow raised or storing failed), dropped (shadow queue full)",
            ["outcome"],
            registry=self.registry,
        )
        self.shadow_latency = Histogram(
            "warden_shadow_duration_seconds",
            "Time the shadow worker spends per request (moderation + storage), off the live path",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )


class MetricsMiddleware:
    """Counts and times every HTTP request by route template and final status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(method, label, str(status)).inc()
            self.metrics.request_latency.labels(method, label, str(status)).observe(elapsed)
