"""The server's Prometheus metrics (``GET /metrics``), in a registry of its own so that two servers in one
process (tests, benchmarks) never share counts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Requests (by endpoint and status), latencies, queue times, batch sizes and the cache's state."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("xlt_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.latency = Histogram(
            "xlt_request_latency_seconds", "Time to answer a request", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.inputs = Counter("xlt_inputs", "Inputs predicted", registry=r)
        self.queue = Histogram(
            "xlt_queue_seconds", "Time an input waited for its batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.compute = Histogram(
            "xlt_batch_compute_seconds", "Time a batch computed", buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram("xlt_batch_size", "Inputs per batch", buckets=BATCH_BUCKETS, registry=r)
        self.batch_plans = Histogram("xlt_batch_plans", "Distinct plans per batch", buckets=BATCH_BUCKETS, registry=r)
        self.resident = Gauge("xlt_representations_resident", "Representations in the bank", registry=r)
        self.resident_bytes = Gauge(
            "xlt_representations_resident_bytes", "Bytes of resident representations", registry=r
        )
        self.loads = Counter("xlt_representation_loads", "Representations loaded", registry=r)
        self.load_failures = Counter("xlt_representation_load_failures", "Loads refused", registry=r)
        self.evictions = Counter("xlt_representation_evictions", "Representations evicted", registry=r)
        self.queued = Gauge("xlt_queued_inputs", "Inputs waiting for a batch", registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
