-- The compliance console: hourly counts of the decision log, kept by a trigger in the
-- transaction that records each decision, so that an overview never scans the log; the
-- reason codes as rows, so that a reason filter searches an index; each node's last
-- decision. All of it is derived from decisions: rebuilt here from what the log holds.
-- A missing company or campaign is '' in these tables (NULLs would not group in a key).

CREATE TABLE decision_hours (
    kind     TEXT    NOT NULL,
    hour     INTEGER NOT NULL,          -- at - at % 3600000000
    verdict  TEXT    NOT NULL,
    company  TEXT    NOT NULL,
    campaign TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (kind, hour, verdict, company, campaign)
) WITHOUT ROWID;

-- A decision counts once per distinct reason code it logged.
CREATE TABLE decision_reason_hours (
    kind     TEXT    NOT NULL,
    hour     INTEGER NOT NULL,
    code     TEXT    NOT NULL,
    verdict  TEXT    NOT NULL,
    company  TEXT    NOT NULL,
    campaign TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (kind, hour, code, verdict, company, campaign)
) WITHOUT ROWID;

-- The decisions per reason code, newest first by (at, seq): the console's reason filter.
CREATE TABLE decision_reasons (
    code TEXT    NOT NULL,
    at   INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (code, at, seq)
) WITHOUT ROWID;

-- Each node's last recorded decision (by seq): the gates' health.
CREATE TABLE decision_nodes (
    node TEXT    NOT NULL PRIMARY KEY,
    at   INTEGER NOT NULL,
    seq  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER decisions_console AFTER INSERT ON decisions
BEGIN
    INSERT INTO decision_hours (kind, hour, verdict, company, campaign, count)
    VALUES (NEW.kind, NEW.at - NEW.at % 3600000000, NEW.verdict, coalesce(NEW.company, ''),
            coalesce(NEW.campaign, ''), 1)
    ON CONFLICT DO UPDATE SET count = count + 1;
    INSERT INTO decision_reasons (code, at, seq)
    SELECT DISTINCT json_extract(value, '$.code'), NEW.at, NEW.seq FROM json_each(NEW.reasons)
    WHERE json_extract(value, '$.code') IS NOT NULL
    ON CONFLICT DO NOTHING;
    INSERT INTO decision_reason_hours (kind, hour, code, verdict, company, campaign, count)
    SELECT DISTINCT NEW.kind, NEW.at - NEW.at % 3600000000, json_extract(value, '$.code'),
           NEW.verdict, coalesce(NEW.company, ''), coalesce(NEW.campaign, ''), 1
    FROM json_each(NEW.reasons) WHERE json_extract(value, '$.code') IS NOT NULL
    ON CONFLICT DO UPDATE SET count = count + 1;
    INSERT INTO decision_nodes (node, at, seq) VALUES (coalesce(NEW.node, ''), NEW.at, NEW.seq)
    ON CONFLICT DO UPDATE SET at = excluded.at, seq = excluded.seq WHERE excluded.seq > seq;
END;

-- What the log already holds.
INSERT INTO decision_hours (kind, hour, verdict, company, campaign, count)
SELECT kind, at - at % 3600000000, verdict, coalesce(company, ''), coalesce(campaign, ''),
       count(*)
FROM decisions GROUP BY 1, 2, 3, 4, 5;

INSERT INTO decision_reasons (code, at, seq)
SELECT DISTINCT json_extract(r.value, '$.code'), d.at, d.seq
FROM decisions d, json_each(d.reasons) r WHERE json_extract(r.value, '$.code') IS NOT NULL;

INSERT INTO decision_reason_hours (kind, hour, code, verdict, company, campaign, count)
SELECT d.kind, d.at - d.at % 3600000000, r.code, d.verdict, coalesce(d.company, ''),
       coalesce(d.campaign, ''), count(*)
FROM decision_reasons r JOIN decisions d ON d.seq = r.seq GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO decision_nodes (node, at, seq)
SELECT coalesce(node, ''), at, max(seq) FROM decisions GROUP BY coalesce(node, '');

-- The console's filters, newest first: each index ends in at, then the rowid (seq).
CREATE INDEX decisions_by_company ON decisions (company, at);
CREATE INDEX decisions_by_campaign ON decisions (campaign, at);
CREATE INDEX decisions_by_verdict ON decisions (verdict, at);
