-- ops.etl_amendments keeps every amendment the ETL applied. Its unique key was the pair of
-- hashes, so an execution amended A→B, back to A, then to B again lost the second A→B from the
-- audit (the insert did nothing on the conflict). The same change applied by another run is
-- another amendment: the run's instant is part of the key.
ALTER TABLE ops.etl_amendments DROP CONSTRAINT etl_amendments_source_execution_id_previous_hash_current_ha_key;
ALTER TABLE ops.etl_amendments ADD CONSTRAINT etl_amendments_change_key UNIQUE (source, execution_id, previous_hash, current_hash, amended_at);
