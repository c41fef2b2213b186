-- The rebalancer's planner state between cycles (and between run-once processes): the
-- detector's per-VM samples within the window, its candidates (hysteresis) and the byte
-- budget per AZ, as one JSON document per name (one row: 'planner').
CREATE TABLE rebalance_detector (
    name        VARCHAR(64) NOT NULL PRIMARY KEY,
    state       TEXT NOT NULL,
    updated_at  DOUBLE NOT NULL
);
