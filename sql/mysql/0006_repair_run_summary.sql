-- A run's summary is its report, one entry per node: a 2,000-node apply writes ~300 KB, far past
-- the VARCHAR(8192) of 0004 (the run then failed at its very end, its writes done). MEDIUMTEXT
-- holds 16 MB; MySQL's protocol types it as a BLOB, which the store reads as UTF-8 text.
ALTER TABLE repair_run MODIFY summary MEDIUMTEXT NULL;
