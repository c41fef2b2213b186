-- The leader lease is the only election on every backend (GET_LOCK does not elect on Galera).
-- epoch: raised by one each time the lease changes hands; it fences a deposed leader's writes.
-- writes: bumped by each fenced journal write, so the write touches the lease row and Galera
-- certifies it against a concurrent takeover.
ALTER TABLE leader_lease ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE leader_lease ADD COLUMN writes BIGINT NOT NULL DEFAULT 0;
-- The epoch each transition was written under: a deposed leader never writes after its
-- successor, so a journal's epochs never go down.
ALTER TABLE rebalance_event ADD COLUMN epoch BIGINT NULL;
