-- Latest telemetry per hypervisor and per VM, so a restarted steward keeps what it knew.
CREATE TABLE host_telemetry (
    host        VARCHAR(255) NOT NULL PRIMARY KEY,
    az          VARCHAR(255) NULL,
    steal       DOUBLE NULL,
    load5       DOUBLE NULL,
    vcpus       DOUBLE NULL,
    observed_at DOUBLE NOT NULL,
    updated_at  DOUBLE NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE vm_telemetry (
    uuid        VARCHAR(36) NOT NULL PRIMARY KEY,
    host        VARCHAR(255) NULL,
    role        VARCHAR(255) NULL,
    steal       DOUBLE NULL,
    load5       DOUBLE NULL,
    vcpus       DOUBLE NULL,
    observed_at DOUBLE NOT NULL,
    updated_at  DOUBLE NOT NULL,
    INDEX vm_telemetry_host (host)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
