-- An admin's leave for one move of one VM into another AZ: the next scheduling request that
-- moves the VM is bound to `to_az` instead of the VM's own AZ, and uses the grant up
-- (`used_at`); unused, it lapses at `expires_at`.
CREATE TABLE cross_az_grant (
    id          VARCHAR(36) NOT NULL PRIMARY KEY,
    vm          VARCHAR(36) NOT NULL,
    to_az       VARCHAR(255) NOT NULL,
    granted_by  VARCHAR(255) NOT NULL,
    reason      TEXT NOT NULL,
    created_at  DOUBLE NOT NULL,
    expires_at  DOUBLE NOT NULL,
    used_at     DOUBLE NULL,
    revoked_at  DOUBLE NULL
);

CREATE INDEX cross_az_grant_vm ON cross_az_grant (vm);
