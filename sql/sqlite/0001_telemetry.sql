-- Latest telemetry per hypervisor and per VM, so a restarted steward keeps what it knew.
CREATE TABLE host_telemetry (
    host        VARCHAR(255) NOT NULL PRIMARY KEY,
    az          VARCHAR(255) NULL,
    steal       DOUBLE NULL,
    load5       DOUBLE NULL,
    vcpus       DOUBLE NULL,
    observed_at DOUBLE NOT NULL,
    updated_at  DOUBLE NOT NULL
);

CREATE TABLE vm_telemetry (
    uuid        VARCHAR(36) NOT NULL PRIMARY KEY,
    host        VARCHAR(255) NULL,
    role        VARCHAR(255) NULL,
    steal       DOUBLE NULL,
    load5       DOUBLE NULL,
    vcpus       DOUBLE NULL,
    observed_at DOUBLE NOT NULL,
    updated_at  DOUBLE NOT NULL
);

CREATE INDEX vm_telemetry_host ON vm_telemetry (host);
