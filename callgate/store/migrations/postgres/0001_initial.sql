-- Times are integer microseconds since the Unix epoch, UTC.
-- company = '' in opposition means "every company" (a Bloctel entry).

CREATE TABLE attempts (
    id          BIGSERIAL PRIMARY KEY,
    company     TEXT    NOT NULL,
    callee      TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    purpose     TEXT    NOT NULL,
    decision_id TEXT
);
CREATE INDEX attempts_by_key ON attempts (company, callee, at);

CREATE TABLE refusals (
    id      BIGSERIAL PRIMARY KEY,
    company TEXT    NOT NULL,
    callee  TEXT    NOT NULL,
    at      BIGINT  NOT NULL,
    source  TEXT
);
CREATE INDEX refusals_by_key ON refusals (company, callee, at);

CREATE TABLE consents (
    id         BIGSERIAL PRIMARY KEY,
    company    TEXT    NOT NULL,
    callee     TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    given_at   BIGINT  NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    source     TEXT,
    proof      TEXT,
    given_by   TEXT
);
CREATE INDEX consents_by_key ON consents (company, callee);

CREATE TABLE contracts (
    id       BIGSERIAL PRIMARY KEY,
    company  TEXT    NOT NULL,
    callee   TEXT    NOT NULL,
    start_at BIGINT  NOT NULL,
    end_at   BIGINT
);
CREATE INDEX contracts_by_key ON contracts (company, callee);

CREATE TABLE opposition (
    id         BIGSERIAL PRIMARY KEY,
    callee     TEXT    NOT NULL,
    company    TEXT    NOT NULL DEFAULT '',
    source     TEXT    NOT NULL,
    added_at   BIGINT  NOT NULL,
    removed_at BIGINT
);
CREATE UNIQUE INDEX opposition_active ON opposition (callee, company, source)
    WHERE removed_at IS NULL;

-- The decision log: every decision of every gate, hash-chained (callgate/auditlog.py).
-- seq is the log's order; hash covers the entry and prev_hash, the previous entry's hash.
CREATE TABLE decisions (
    seq          BIGINT PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    at           BIGINT  NOT NULL,
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
    latency_ms   DOUBLE PRECISION,
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL
);
CREATE INDEX decisions_by_time ON decisions (at);
CREATE INDEX decisions_by_callee ON decisions (callee, at);

-- After a purge: the last purged entry, so that what remains still verifies.
CREATE TABLE log_anchor (
    seq       BIGINT  NOT NULL,
    hash      TEXT    NOT NULL,
    purged_at BIGINT  NOT NULL
);
