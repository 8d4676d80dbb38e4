-- The compliance console: hourly counts of the decision log, kept by a trigger in the
-- transaction that records each decision, so that an overview never scans the log; the
-- reason codes as rows, so that a reason filter searches an index; each node's last
-- decision. All of it is derived from decisions: rebuilt here from what the log holds.
-- A missing company or campaign is '' in these tables (NULLs would not group in a key).

CREATE TABLE decision_hours (
    kind     TEXT   NOT NULL,
    hour     BIGINT NOT NULL,           -- at - at % 3600000000
    verdict  TEXT   NOT NULL,
    company  TEXT   NOT NULL,
    campaign TEXT   NOT NULL,
    count    BIGINT NOT NULL,
    PRIMARY KEY (kind, hour, verdict, company, campaign)
);

-- A decision counts once per distinct reason code it logged.
CREATE TABLE decision_reason_hours (
    kind     TEXT   NOT NULL,
    hour     BIGINT NOT NULL,
    code     TEXT   NOT NULL,
    verdict  TEXT   NOT NULL,
    company  TEXT   NOT NULL,
    campaign TEXT   NOT NULL,
    count    BIGINT NOT NULL,
    PRIMARY KEY (kind, hour, code, verdict, company, campaign)
);

-- The decisions per reason code, newest first by (at, seq): the console's reason filter.
CREATE TABLE decision_reasons (
    code TEXT   NOT NULL,
    at   BIGINT NOT NULL,
    seq  BIGINT NOT NULL,
    PRIMARY KEY (code, at, seq)
);

-- Each node's last recorded decision (by seq): the gates' health.
CREATE TABLE decision_nodes (
    node TEXT   NOT NULL PRIMARY KEY,
    at   BIGINT NOT NULL,
    seq  BIGINT NOT NULL
);

-- Once per statement, over the rows it inserted: a group of decisions, or a whole
-- restored table, costs one pass.
CREATE FUNCTION decisions_console() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO decision_hours AS h (kind, hour, verdict, company, campaign, count)
    SELECT kind, at - at % 3600000000, verdict, coalesce(company, ''), coalesce(campaign, ''),
           count(*)
    FROM recorded GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (kind, hour, verdict, company, campaign)
    DO UPDATE SET count = h.count + excluded.count;

    INSERT INTO decision_reasons (code, at, seq)
    SELECT DISTINCT r.value ->> 'code', d.at, d.seq
    FROM recorded d, jsonb_array_elements(d.reasons::jsonb) AS r(value)
    WHERE r.value ->> 'code' IS NOT NULL
    ON CONFLICT DO NOTHING;

    INSERT INTO decision_reason_hours AS h (kind, hour, code, verdict, company, campaign, count)
    SELECT d.kind, d.at - d.at % 3600000000, c.code, d.verdict, coalesce(d.company, ''),
           coalesce(d.campaign, ''), count(*)
    FROM recorded d, LATERAL (
        SELECT DISTINCT r.value ->> 'code' AS code
        FROM jsonb_array_elements(d.reasons::jsonb) AS r(value)) AS c
    WHERE c.code IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (kind, hour, code, verdict, company, campaign)
    DO UPDATE SET count = h.count + excluded.count;

    INSERT INTO decision_nodes AS n (node, at, seq)
    SELECT DISTINCT ON (coalesce(node, '')) coalesce(node, ''), at, seq
    FROM recorded ORDER BY coalesce(node, ''), seq DESC
    ON CONFLICT (node) DO UPDATE SET at = excluded.at, seq = excluded.seq
    WHERE excluded.seq > n.seq;
    RETURN NULL;
END
$$;

CREATE TRIGGER decisions_console AFTER INSERT ON decisions
    REFERENCING NEW TABLE AS recorded
    FOR EACH STATEMENT EXECUTE FUNCTION decisions_console();

-- What the log already holds.
INSERT INTO decision_hours (kind, hour, verdict, company, campaign, count)
SELECT kind, at - at % 3600000000, verdict, coalesce(company, ''), coalesce(campaign, ''),
       count(*)
FROM decisions GROUP BY 1, 2, 3, 4, 5;

INSERT INTO decision_reasons (code, at, seq)
SELECT DISTINCT r.value ->> 'code', d.at, d.seq
FROM decisions d, jsonb_array_elements(d.reasons::jsonb) AS r(value)
WHERE r.value ->> 'code' IS NOT NULL;

INSERT INTO decision_reason_hours (kind, hour, code, verdict, company, campaign, count)
SELECT d.kind, d.at - d.at % 3600000000, r.code, d.verdict, coalesce(d.company, ''),
       coalesce(d.campaign, ''), count(*)
FROM decision_reasons r JOIN decisions d ON d.seq = r.seq GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO decision_nodes (node, at, seq)
SELECT DISTINCT ON (coalesce(node, '')) coalesce(node, ''), at, seq
FROM decisions ORDER BY coalesce(node, ''), seq DESC;

-- The console's filters, newest first by (at, seq).
DROP INDEX decisions_by_time;
CREATE INDEX decisions_by_time ON decisions (at, seq);
DROP INDEX decisions_by_callee;
CREATE INDEX decisions_by_callee ON decisions (callee, at, seq);
CREATE INDEX decisions_by_company ON decisions (company, at, seq);
CREATE INDEX decisions_by_campaign ON decisions (campaign, at, seq);
CREATE INDEX decisions_by_verdict ON decisions (verdict, at, seq);
-- A decision found by the first characters of its id (`log explain 3f2a9c1e`), in code
-- point order whatever the database's collation.
CREATE INDEX decisions_by_id_prefix ON decisions (id COLLATE "C");
