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

CREATE TABLE decisions (
    id          TEXT    PRIMARY KEY,
    at          INTEGER NOT NULL,
    node        TEXT,
    channel     TEXT,
    company     TEXT,
    campaign    TEXT,
    purpose     TEXT    NOT NULL,
    caller_in   TEXT    NOT NULL,
    caller_out  TEXT,
    callee      TEXT,
    territory   TEXT,
    verdict     TEXT    NOT NULL,
    reasons     TEXT    NOT NULL,
    retry_after TEXT,
    ruleset     TEXT    NOT NULL
);
CREATE INDEX decisions_by_time ON decisions (at);
