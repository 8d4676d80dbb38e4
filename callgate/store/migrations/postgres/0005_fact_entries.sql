-- Every write of a fact, as an entry of the decision log's hash chain (callgate/factlog.py):
-- seq is drawn from the same order as the decisions' seq, and prev_hash is the hash of the
-- entry before it, a decision or a fact. changes and bulk are JSON: the rows written, with
-- their images before and after; or, for many rows at once, their ids and a digest.
CREATE TABLE fact_entries (
    seq           BIGINT PRIMARY KEY,
    at            BIGINT  NOT NULL,
    node          TEXT,
    fact          TEXT    NOT NULL,
    op            TEXT    NOT NULL,
    company       TEXT,
    callee        TEXT,
    callee_salt   TEXT    NOT NULL,
    callee_commit TEXT    NOT NULL,
    changes       TEXT    NOT NULL,
    bulk          TEXT    NOT NULL,
    prev_hash     TEXT    NOT NULL,
    hash          TEXT    NOT NULL
);
CREATE INDEX fact_entries_by_callee ON fact_entries (callee, seq);
CREATE INDEX fact_entries_by_time ON fact_entries (at);
