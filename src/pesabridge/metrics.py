"""Prometheus metrics. No label ever carries payment data (no receipts, no numbers)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECORDED = Counter(
    "pesabridge_transactions_recorded_total",
    "Observations recorded in the ledger, by source and result (new, known, conflicting).",
    ["source", "result"],
)
REJECTED = Counter(
    "pesabridge_rejects_total", "Rows or payloads rejected into quarantine.", ["source"]
)
DELIVERIES = Counter(
    "pesabridge_delivery_attempts_total",
    "Delivery attempts by sink and outcome (delivered, retry, dead).",
    ["sink", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "pesabridge_delivery_seconds", "Time taken by one delivery attempt.", ["sink"]
)
CALLBACKS = Counter(
    "pesabridge_callbacks_total", "Callbacks received, by source and answer.", ["source", "answer"]
)
REFUSED = Counter(
    "pesabridge_callbacks_refused_total",
    "Callbacks refused before parsing, by source and reason (ip, auth, token, signature, size).",
    ["source", "reason"],
)
FAILED_ATTEMPTS = Counter(
    "pesabridge_failed_attempts_total",
    "Payments a provider reported as not having happened (STK 1032, MTN FAILED), by source.",
    ["source"],
)
GROUP_COMMIT_SIZE = Histogram(
    "pesabridge_group_commit_size",
    "Callbacks committed per write transaction by the group committer.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
