-- MySQL's repair_run.summary grows to MEDIUMTEXT here; SQLite's TEXT has no such limit. Kept so
-- that both backends number their migrations alike.
SELECT 1;
