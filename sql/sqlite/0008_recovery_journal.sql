-- Host-failure recovery's journal: one incident per dead host (suspected -> fencing -> fenced
-- -> forced_down -> evacuating -> done | failed | blocked | cleared), one row per VM to
-- evacuate (pending -> evacuating -> done | failed | blocked), every transition as an event
-- written before the side effect it announces.
CREATE TABLE recovery_incident (
    id              VARCHAR(36) NOT NULL PRIMARY KEY,
    host            VARCHAR(255) NOT NULL,
    az              VARCHAR(255) NOT NULL,
    service_id      VARCHAR(64) NOT NULL,
    state           VARCHAR(16) NOT NULL,
    mode            VARCHAR(16) NOT NULL,
    -- The suspicion with its evidence (JSON).
    evidence        TEXT NOT NULL,
    -- The compute service as Nova showed it before steward forced it down (JSON).
    service_before  TEXT NULL,
    approved_by     VARCHAR(255) NULL,
    approved_at     DOUBLE NULL,
    error           TEXT NULL,
    created_at      DOUBLE NOT NULL,
    updated_at      DOUBLE NOT NULL,
    finished_at     DOUBLE NULL,
    released_by     VARCHAR(255) NULL,
    released_at     DOUBLE NULL
);

CREATE INDEX recovery_incident_host ON recovery_incident (host);
CREATE INDEX recovery_incident_state ON recovery_incident (state);

CREATE TABLE recovery_vm (
    id              VARCHAR(36) NOT NULL PRIMARY KEY,
    incident_id     VARCHAR(36) NOT NULL,
    seq             INTEGER NOT NULL,
    vm              VARCHAR(36) NOT NULL,
    vm_name         VARCHAR(255) NOT NULL,
    az              VARCHAR(255) NOT NULL,
    role            VARCHAR(255) NULL,
    flavor          VARCHAR(255) NULL,
    state           VARCHAR(16) NOT NULL,
    -- The server as Nova showed it on the dead host (JSON): the before-image.
    before_image    TEXT NOT NULL,
    -- Set once Nova accepted the evacuate action (2xx).
    accepted_at     DOUBLE NULL,
    request_id      VARCHAR(255) NULL,
    target          VARCHAR(255) NULL,
    error           TEXT NULL,
    created_at      DOUBLE NOT NULL,
    updated_at      DOUBLE NOT NULL,
    finished_at     DOUBLE NULL
);

CREATE INDEX recovery_vm_incident ON recovery_vm (incident_id);
CREATE INDEX recovery_vm_vm ON recovery_vm (vm);

CREATE TABLE recovery_event (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id VARCHAR(36) NOT NULL,
    -- The VM row the event is about; empty for the host's own transitions.
    vm_row      VARCHAR(36) NOT NULL,
    at          DOUBLE NOT NULL,
    from_state  VARCHAR(16) NOT NULL,
    to_state    VARCHAR(16) NOT NULL,
    detail      TEXT NOT NULL
);

CREATE INDEX recovery_event_incident ON recovery_event (incident_id);
