-- The inventory repair's runs and journal: every write to Nova's data or Placement is recorded
-- with its before-image BEFORE it is made, so a run can be resumed after a crash and rolled back.
CREATE TABLE repair_run (
    id          VARCHAR(64) NOT NULL PRIMARY KEY,
    started_at  DOUBLE NOT NULL,
    finished_at DOUBLE NULL,
    -- running | ok | failed | rolled_back
    status      VARCHAR(16) NOT NULL,
    selection   VARCHAR(4096) NOT NULL,
    summary     VARCHAR(8192) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE repair_journal (
    -- Order of writes; `entry` (a uuid the writer picks) names a row without relying on
    -- the driver's last-insert id.
    id           BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    entry        VARCHAR(64) NOT NULL,
    run_id       VARCHAR(64) NOT NULL,
    node         VARCHAR(64) NOT NULL,
    action       VARCHAR(40) NOT NULL,
    object       VARCHAR(255) NOT NULL,
    -- BLOBs: sqlx's Any driver reads MySQL TEXT as bytes anyway; images are UTF-8 JSON.
    before_image LONGBLOB NULL,
    after_image  LONGBLOB NULL,
    -- pending (before-image saved, write not confirmed) | done | failed | restored
    state        VARCHAR(16) NOT NULL,
    at           DOUBLE NOT NULL,
    message      VARCHAR(2048) NULL,
    UNIQUE KEY repair_journal_entry (entry),
    INDEX repair_journal_run (run_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
