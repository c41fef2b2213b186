-- The rebalancer's planner state between cycles (and between run-once processes): the
-- detector's per-VM samples within the window, its candidates (hysteresis) and the byte
-- budget per AZ, as one JSON document per name (one row: 'planner').
CREATE TABLE rebalance_detector (
    name        VARCHAR(64) NOT NULL PRIMARY KEY,
    state       LONGTEXT COLLATE utf8mb4_unicode_ci NOT NULL,
    updated_at  DOUBLE NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
