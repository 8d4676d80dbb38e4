-- Times are integer microseconds since the Unix epoch, UTC.
-- company = '' in opposition means "every company" (a Bloctel entry).

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    company     TEXT    NOT NULL,
    callee      TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    purpose     TEXT    NOT NULL,
    decision_id TEXT
);
CREATE INDEX attempts_by_key ON attempts (company, callee, at);

CREATE TABLE refusals (
    id      INTEGER PRIMARY KEY,
    company TEXT    NOT NULL,
    callee  TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    source  TEXT
);
CREATE INDEX refusals_by_key ON refusals (company, callee, at);

CREATE TABLE consents (
    id         INTEGER PRIMARY KEY,
    company    TEXT    NOT NULL,
    callee     TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    given_at   INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    source     TEXT,
    proof      TEXT,
    given_by   TEXT
);
CREATE INDEX consents_by_key ON consents (company, callee);

CREATE TABLE contracts (
    id       INTEGER PRIMARY KEY,
    company  TEXT    NOT NULL,
    callee   TEXT    NOT NULL,
    start_at INTEGER NOT NULL,
    end_at   INTEGER
);
CREATE INDEX contracts_by_key ON contracts (company, callee);

CREATE TABLE opposition (
    id         INTEGER PRIMARY KEY,
    callee     TEXT    NOT NULL,
    company    TEXT    NOT NULL DEFAULT '',
    source     TEXT    NOT NULL,
    added_at   INTEGER NOT NULL,
    removed_at INTEGER
);
CREATE UNIQUE INDEX opposition_active ON opposition (callee, company, source)
    WHERE removed_at IS NULL;

-- The decision log: every decision of every gate, hash-chained (callgate/auditlog.py).
-- seq is the log's order; hash covers the entry and prev_hash, the previous entry's hash.
CREATE TABLE decisions (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    at           INTEGER NOT NULL,
    node         TEXT,
    channel      TEXT,
    kind         TEXT    NOT NULL,          -- call | dry-run
    company      TEXT,
    campaign     TEXT,
    purpose      TEXT    NOT NULL,
    dept         TEXT,
    caller_in    TEXT    NOT NULL,
    caller_out   TEXT,
    callee_in    TEXT,                      -- as dialled
    callee       TEXT,                      -- E.164
    callee_salt  TEXT    NOT NULL,
    callee_commit TEXT   NOT NULL,
    territory    TEXT,
    verdict      TEXT    NOT NULL,
    reasons      TEXT    NOT NULL,          -- JSON: [{code, message, blocking}]
    retry_after  TEXT,
    ruleset      TEXT    NOT NULL,
    latency_ms   REAL,
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL
);
CREATE INDEX decisions_by_time ON decisions (at);
CREATE INDEX decisions_by_callee ON decisions (callee, at);

-- After a purge: the last purged entry, so that what remains still verifies.
CREATE TABLE log_anchor (
    seq       INTEGER NOT NULL,
    hash      TEXT    NOT NULL,
    purged_at INTEGER NOT NULL
);
