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
