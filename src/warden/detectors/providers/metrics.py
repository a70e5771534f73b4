"""Prometheus metrics of provider calls: calls, errors by kind, latency, tokens, cost, cache.

One process-wide registry (`PROVIDER_METRICS.registry`), separate from the service's per-app
registry, because detectors are built by `Moderator` in every entry point (API, worker, CLI)
and must not depend on the service; the service exposes it on `/metrics` next to its own.
Labels are bounded: detector instance, provider type, model (all from the policy), error kind.
Never content, ids or keys.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ProviderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        labels = ["detector", "provider", "model"]
        self.calls = Counter("warden_provider_calls_total",
                             "HTTP requests sent to a provider (each retry and repair counts)",
                             [*labels, "outcome"], registry=self.registry)
        self.errors = Counter("warden_provider_errors_total",
                              "Failed provider requests by kind (timeout, rate_limited, server, auth, ...)",
                              [*labels, "kind"], registry=self.registry)
        self.item_errors = Counter("warden_provider_item_errors_total",
                                   "Items that got an error result (after retries, repair and breaker)",
                                   [*labels, "kind"], registry=self.registry)
        self.latency = Histogram("warden_provider_call_duration_seconds", "Duration of one provider request",
                                 labels, buckets=CALL_BUCKETS, registry=self.registry)
        self.tokens = Counter("warden_provider_tokens_total", "Tokens billed by the provider",
                              [*labels, "direction"], registry=self.registry)
        self.cost = Counter("warden_provider_cost_usd_total",
                            "Estimated spend in USD from the policy's prices (per call and per 1k tokens)",
                            labels, registry=self.registry)
        self.cache = Counter("warden_provider_cache_total", "Response cache lookups", ["detector", "result"],
                             registry=self.registry)
        self.repairs = Counter("warden_provider_repairs_total",
                               "LLM answers that failed validation and were sent back for one repair",
                               [*labels, "outcome"], registry=self.registry)
        self.circuit_open = Gauge("warden_provider_circuit_open",
                                  "1 while the detector's circuit breaker is open or half-open", ["detector"],
                                  registry=self.registry)


PROVIDER_METRICS = ProviderMetrics()
