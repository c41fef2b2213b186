-- Where each measurement came from, and the hour-of-week profiles steal prediction reads.
ALTER TABLE host_telemetry ADD COLUMN source VARCHAR(16) NOT NULL DEFAULT 'push';
ALTER TABLE host_telemetry ADD COLUMN cpu_use DOUBLE NULL;
ALTER TABLE vm_telemetry ADD COLUMN source VARCHAR(16) NOT NULL DEFAULT 'push';

-- One row per profile: 168 values (Monday 00:00 UTC first) as a JSON array, null = no data.
CREATE TABLE weekly_profile (
    kind        VARCHAR(16) NOT NULL,
    subject     VARCHAR(255) NOT NULL,
    hours       TEXT NOT NULL,
    weeks       INTEGER NOT NULL,
    computed_at DOUBLE NOT NULL,
    PRIMARY KEY (kind, subject)
);
