"""The ledger's tables (SQLAlchemy Core). Migrations in ``migrations/`` create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    literal_column,
)

from .types import Id, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

files = Table(
    "files",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("source", String(200), nullable=False),
    Column("name", Text, nullable=False),
    Column("path", Text),
    Column("size", BigInteger, nullable=False),
    Column("mtime", UTCDateTime),
    Column("format", String(64)),
    Column("status", String(16), nullable=False),  # ingesting | done | failed
    Column("rows_read", Integer, nullable=False, default=0),
    Column("new", Integer, nullable=False, default=0),
    Column("known", Integer, nullable=False, default=0),
    Column("rejected", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("header", Text),  # the statement's preamble as JSON
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("account", String(64), nullable=False),  # "" when the payload has none
    Column("receipt", String(64), nullable=False),
    Column("entry", String(16), nullable=False),
    Column("direction", String(8), nullable=False),
    # Money as integer minor units: exact on every backend, summable in SQL.
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("occurred_at", UTCDateTime),
    Column("msisdn", String(128)),
    Column("msisdn_kind", String(8)),
    Column("name", String(200)),
    Column("reference", String(200)),
    Column("balance_after_minor", BigInteger),
    Column("status", String(16), nullable=False),
    Column("related_receipt", String(64)),
    Column("origin", String(16), nullable=False),  # file | callback | manual | backfill
    Column("created_at", UTCDateTime, nullable=False),
    # receipt first: the same index serves lookups by receipt (dedup, search).
    UniqueConstraint("receipt", "entry", "provider", "account"),
)

evidence = Table(
    "evidence",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("transaction_id", Id, ForeignKey("transactions.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # file | callback
    Column("source", Text, nullable=False),  # file name or request id
    Column("file_id", Id, ForeignKey("files.id")),
    Column("line", Integer),
    # sha256 of where and what: makes re-recording the same sighting a no-op.
    Column("fingerprint", String(64), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("observed_at", UTCDateTime, nullable=False),
    UniqueConstraint("transaction_id", "fingerprint"),
)

discrepancies = Table(
    "discrepancies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("transaction_id", Id, ForeignKey("transactions.id"), nullable=False),
    Column("evidence_id", Id, ForeignKey("evidence.id")),
    Column("field", String(32), nullable=False),
    Column("recorded", Text),  # what the ledger holds
    Column("observed", Text),  # what the new sighting says
    Column("status", String(16), nullable=False),  # open | resolved
    Column("comment", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
)

rejects = Table(
    "rejects",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("file_id", Id, ForeignKey("files.id")),
    Column("source", Text, nullable=False),
    Column("line", Integer),
    Column("field", String(200)),
    Column("reason", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("transaction_id", Id, ForeignKey("transactions.id"), nullable=False),
    Column("sink", String(100), nullable=False),
    Column("state", String(16), nullable=False),  # pending | in_flight | delivered | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_expires_at", UTCDateTime),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("response", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Column("document_id", String(200)),  # the back office's id, by the response mapping
    UniqueConstraint("transaction_id", "sink"),
    Index("ix_deliveries_claim", "state", "next_attempt_at"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, ForeignKey("deliveries.id"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("worker", String(100), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("outcome", String(16), nullable=False),  # delivered | retry | dead
    Column("status_code", Integer),
    Column("error", Text),
    Column("response", Text),
    # Sent, but no answer came (read timeout, connection dropped after sending).
    Column("unknown_outcome", Boolean, nullable=False, server_default=false()),
    Column("request_summary", Text),  # method, URL, body size and digest; never secrets
)

sink_state = Table(
    # Operator state per sink: a paused sink's deliveries are not claimed.
    "sink_state",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("paused", Boolean, nullable=False, server_default=false()),
    Column("reason", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)

remote_files = Table(
    # Every file a file source saw, keyed by where it was and what it looked like (its
    # path, size and mtime at the source); linked to the file ledger's content row. A
    # key already here is never fetched again; a changed file has a new key.
    "remote_files",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("sha256", String(64)),
    Column("file_id", Id, ForeignKey("files.id")),
    Column("status", String(16), nullable=False),  # fetching | done | skipped | failed
    Column("reason", Text),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("source", "path", "size", "mtime_ns"),
)

source_state = Table(
    "source_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("last_poll_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime),
)

failed_attempts = Table(
    # A provider's report that a payment did not happen (STK ResultCode 1032, MTN FAILED):
    # kept against its request, never a transaction, never posted. A retried callback
    # has the same fingerprint and is stored once.
    "failed_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),  # the callback source's name
    Column("provider", String(32), nullable=False),
    Column("account", String(64)),
    Column("request_id", String(200), index=True),  # CheckoutRequestID, externalId ...
    Column("code", String(64)),
    Column("reason", Text, nullable=False),
    Column("request", Text, nullable=False),  # the HTTP request id it arrived with
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("raw", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

batches = Table(
    # A file-drop sink's batch: cut once, then fixed. Its bytes are kept, so every upload
    # attempt sends exactly the same file under exactly the same name.
    "batches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sink", String(100), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("account", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("period", Date, nullable=False),  # the statement day, in the sink's zone
    Column("sequence", Integer, nullable=False),  # 1, 2 ... per (sink, account, period)
    Column("file_name", Text, nullable=False),
    Column("encoder", String(32), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("entries", Integer, nullable=False),
    Column("closing_balance", String(40)),  # Decimal text; the next batch opens with it
    Column("trigger", String(16), nullable=False),  # schedule | count | manual
    Column("state", String(16), nullable=False),  # cut | failed | uploaded
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_expires_at", UTCDateTime),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("uploaded_at", UTCDateTime),
    UniqueConstraint("sink", "file_name"),
    UniqueConstraint("sink", "account", "period", "sequence"),
    Index("ix_batches_upload", "state", "next_attempt_at"),
)

batch_deliveries = Table(
    # Which deliveries a batch carries; a delivery is in at most one batch.
    "batch_deliveries",
    metadata,
    Column("delivery_id", Id, ForeignKey("deliveries.id"), primary_key=True),
    Column("batch_id", Id, ForeignKey("batches.id"), nullable=False, index=True),
)

batch_schedules = Table(
    # The last scheduled cut each file-drop sink made: a fire missed while no process
    # ran is made up at the next start.
    "batch_schedules",
    metadata,
    Column("sink", String(100), primary_key=True),
    Column("last_fire_at", UTCDateTime, nullable=False),
)

stan_counters = Table(
    "stan_counters",
    metadata,
    Column("sink", String(100), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD in the host's zone
    Column("last", Integer, nullable=False),
)

sink_exchanges = Table(
    # The ISO 8583 sink's crash journal (pesabridge.store.exchanges; migration 0010): what
    # was put on the wire for a delivery, written before it is sent. ``state`` is the whole
    # exchange as JSON; phase, MTI, STAN and RRN are copies for people and SQL. Every
    # change is a compare-and-set on ``version``.
    "sink_exchanges",
    metadata,
    Column("delivery_id", Id, ForeignKey("deliveries.id"), primary_key=True),
    Column("sink", String(100), nullable=False),
    Column("phase", String(16), nullable=False),  # sent | unsent | posted | refused | ...
    Column("mti", String(4), nullable=False),
    Column("stan", Integer, nullable=False),
    Column("rrn", String(64), nullable=False),
    Column("state", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# -- dashboard (migration 0008) -----------------------------------------------------------

users = Table(
    # Local dashboard users: argon2 hashes only, never a password.
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),  # viewer | operator | admin
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime),
)

dashboard_sessions = Table(
    # Server-side sessions: the cookie holds a random token, the table its sha256, so a
    # stolen database cannot be replayed as cookies and logout or disabling a user ends
    # every session at once.
    "dashboard_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("username", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", Text),
    Column("detail", Text),  # JSON
    Column("client", String(100)),
)

dead_letter_resolutions = Table(
    # "Resolved" notes on dead letters. A note covers the delivery as it was when written:
    # a delivery that dies again later (its updated_at moves on) is unresolved again.
    "dead_letter_resolutions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, ForeignKey("deliveries.id"), nullable=False, index=True),
    Column("username", String(100), nullable=False),
    Column("comment", Text, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=False),
)

# Search indexes for the dashboard over millions of transactions. The expressions are
# plain SQL that SQLite and PostgreSQL evaluate alike, and the search builds exactly the
# same expressions (pesabridge.dashboard.search), so SQLite's planner matches them.
MSISDN_LAST4 = func.substr(
    transactions.c.msisdn, func.length(transactions.c.msisdn) - literal_column("3")
)
REFERENCE_FOLDED = func.lower(transactions.c.reference)
Index("ix_transactions_occurred_at", transactions.c.occurred_at)
Index("ix_transactions_msisdn_last4", MSISDN_LAST4)
Index("ix_transactions_reference_folded", REFERENCE_FOLDED)
Index("ix_attempts_finished_at", attempts.c.finished_at)

# -- reconciliation (pesabridge.reconcile; migration 0007) ------------------------------

recon_runs = Table(
    # One reconciliation of an account over a period of days (in the account's zone).
    "recon_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("account", String(64), nullable=False),
    Column("period_start", Date, nullable=False),  # first day, inclusive
    Column("period_end", Date, nullable=False),  # last day, inclusive
    Column("trigger", String(16), nullable=False),  # cli | ingest | auto | api
    Column("statement", Text),  # the statement file given, if any
    Column("backoffice", Text),  # the back-office record given, if any
    Column("open_exceptions", Integer, nullable=False, default=0),
    Column("summary", Text),  # counts per outcome, JSON
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
)

recon_days = Table(
    # Per account, day and outcome: how many and how much (replaced by each run).
    "recon_days",
    metadata,
    Column("provider", String(32), primary_key=True),
    Column("account", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("outcome", String(32), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("run_id", Id, ForeignKey("recon_runs.id"), nullable=False),
)

recon_exceptions = Table(
    # A difference a person must look at (or one repaired automatically, for the record).
    # ``key`` names the finding itself, so a later run finds the same row again: an open
    # one stays open, a resolved one stays resolved and does not reappear.
    "recon_exceptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("provider", String(32), nullable=False),
    Column("account", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # open | resolved | repaired | cleared
    Column("transaction_id", Id, ForeignKey("transactions.id"), index=True),
    Column("receipt", String(64)),
    Column("sink", String(100)),
    Column("file_id", Id, ForeignKey("files.id")),
    Column("line", Integer),
    Column("amount_minor", BigInteger),
    Column("currency", String(3)),
    Column("detail", Text, nullable=False),
    Column("first_run_id", Id, ForeignKey("recon_runs.id"), nullable=False),
    Column("last_run_id", Id, ForeignKey("recon_runs.id"), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("resolved_by", String(100)),
    Column("comment", Text),
    Index("ix_recon_exceptions_scope", "account", "day", "status"),
)

recon_resolutions = Table(
    # The audit trail: who resolved which exception, when, and why.
    "recon_resolutions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("exception_id", Id, ForeignKey("recon_exceptions.id"), nullable=False, index=True),
    Column("action", String(16), nullable=False),  # resolve
    Column("by_user", String(100), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
