-- Every decision reads the callee's opposition entries, removed ones included (the facts
-- are "as of" an instant): the partial index on active entries cannot serve that read.
CREATE INDEX opposition_by_callee ON opposition (callee, company);
