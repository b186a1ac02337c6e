"""The durable ledger: transactions, evidence, files, rejects, the outbox.

SQLite (WAL) by default, PostgreSQL by URL; the same code and migrations serve both::

    store = Store.open("postgresql+psycopg://pesabridge@db/pesabridge")
"""

from .connector import DEFAULT_URL
from .ledger import RecordResult, Router, Sighting
from .outbox import AttemptRecord, Claimed
from .queries import DeliveryView
from .store import Store, utcnow

__all__ = [
    "DEFAULT_URL",
    "AttemptRecord",
    "Claimed",
    "DeliveryView",
    "RecordResult",
    "Router",
    "Sighting",
    "Store",
    "utcnow",
]
