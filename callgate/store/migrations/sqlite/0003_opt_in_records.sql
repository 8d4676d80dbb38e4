-- The opt-in regime's records (RULES-FR §2.4, §3.3, §4): what a consent must say to prove
-- itself, and appointments. Old consents keep NULL in the new columns and stay readable.
ALTER TABLE consents ADD COLUMN collected_by TEXT;
ALTER TABLE consents ADD COLUMN channel TEXT;
ALTER TABLE consents ADD COLUMN covers TEXT;
ALTER TABLE consents ADD COLUMN proof_sha256 TEXT;
ALTER TABLE consents ADD COLUMN proof_name TEXT;
-- How a revoked consent ended: 'revoked' (consent revoke) or 'withdrawn' (by voice, §3.3).
ALTER TABLE consents ADD COLUMN revoked_how TEXT;

-- The callee's agreement to a call at a precise date and time; end_at NULL means
-- rules.appointment_window_minutes from start_at.
CREATE TABLE appointments (
    id           INTEGER PRIMARY KEY,
    company      TEXT    NOT NULL,
    callee       TEXT    NOT NULL,
    start_at     INTEGER NOT NULL,
    end_at       INTEGER,
    recorded_at  INTEGER NOT NULL,
    cancelled_at INTEGER,
    source       TEXT,
    proof        TEXT,
    agreed_by    TEXT
);
CREATE INDEX appointments_by_key ON appointments (company, callee, start_at);
