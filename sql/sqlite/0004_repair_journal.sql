-- The inventory repair's runs and journal: every write to Nova's data or Placement is recorded
-- with its before-image BEFORE it is made, so a run can be resumed after a crash and rolled back.
CREATE TABLE repair_run (
    id          TEXT NOT NULL PRIMARY KEY,
    started_at  DOUBLE NOT NULL,
    finished_at DOUBLE NULL,
    status      TEXT NOT NULL,
    selection   TEXT NOT NULL,
    summary     TEXT NULL
);

CREATE TABLE repair_journal (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    entry        TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    node         TEXT NOT NULL,
    action       TEXT NOT NULL,
    object       TEXT NOT NULL,
    before_image BLOB NULL,
    after_image  BLOB NULL,
    state        TEXT NOT NULL,
    at           DOUBLE NOT NULL,
    message      TEXT NULL
);
CREATE INDEX repair_journal_run ON repair_journal (run_id, id);
CREATE UNIQUE INDEX repair_journal_entry ON repair_journal (entry);
