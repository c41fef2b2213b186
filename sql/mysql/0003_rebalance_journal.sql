-- The rebalancer's journal: plans, one row per action with its state, every transition as an
-- event written before the side effect it announces, and the leader lease (used on SQLite only;
-- kept here so both schemas match). TEXT columns hold JSON and prose: a text collation.
CREATE TABLE rebalance_plan (
    id          VARCHAR(36) NOT NULL PRIMARY KEY,
    created_at  DOUBLE NOT NULL,
    -- proposed | approved | cancelled
    state       VARCHAR(16) NOT NULL,
    mode        VARCHAR(16) NOT NULL,
    -- The planner's summary (JSON): limits hit, candidates seen.
    summary     TEXT COLLATE utf8mb4_unicode_ci NOT NULL,
    decided_by  VARCHAR(255) NULL,
    decided_at  DOUBLE NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE rebalance_action (
    id              VARCHAR(36) NOT NULL PRIMARY KEY,
    plan_id         VARCHAR(36) NOT NULL,
    seq             INTEGER NOT NULL,
    vm              VARCHAR(36) NOT NULL,
    vm_name         VARCHAR(255) NOT NULL,
    source          VARCHAR(255) NOT NULL,
    target          VARCHAR(255) NOT NULL,
    az              VARCHAR(255) NOT NULL,
    ram_mb          BIGINT NOT NULL,
    disk_gb         BIGINT NOT NULL,
    block_migration INTEGER NOT NULL,
    reason          TEXT COLLATE utf8mb4_unicode_ci NOT NULL,
    -- planned | approved | draining | migrating | rejoining | done | failed | aborted
    state           VARCHAR(16) NOT NULL,
    -- What the action ends as once rejoined (done | failed | aborted); set on entering rejoining.
    outcome         VARCHAR(16) NULL,
    -- The server as Nova showed it before os-migrateLive (JSON): the before-image.
    before_image    TEXT COLLATE utf8mb4_unicode_ci NULL,
    -- Set once Nova accepted os-migrateLive (202): a resumed action polls instead of asking again.
    accepted_at     DOUBLE NULL,
    migration_id    VARCHAR(64) NULL,
    abort_requested_at DOUBLE NULL,
    bytes_moved     BIGINT NOT NULL DEFAULT 0,
    error           TEXT COLLATE utf8mb4_unicode_ci NULL,
    created_at      DOUBLE NOT NULL,
    updated_at      DOUBLE NOT NULL,
    finished_at     DOUBLE NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE INDEX rebalance_action_plan ON rebalance_action (plan_id);
CREATE INDEX rebalance_action_state ON rebalance_action (state);

CREATE TABLE rebalance_event (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    action_id   VARCHAR(36) NOT NULL,
    at          DOUBLE NOT NULL,
    from_state  VARCHAR(16) NOT NULL,
    to_state    VARCHAR(16) NOT NULL,
    detail      TEXT COLLATE utf8mb4_unicode_ci NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE INDEX rebalance_event_action ON rebalance_event (action_id);

-- One row per lease name: who holds it until when (MySQL/MariaDB use GET_LOCK instead).
CREATE TABLE leader_lease (
    name        VARCHAR(64) NOT NULL PRIMARY KEY,
    holder      VARCHAR(255) NOT NULL,
    expires_at  DOUBLE NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
