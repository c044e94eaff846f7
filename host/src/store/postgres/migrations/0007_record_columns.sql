-- wasmhook schema 7: the record columns (serde_json bytes nothing is queried by) cost less.
--
-- No statistics: no statement filters, joins or sorts on them, yet each `ANALYZE` of a busy
-- table read and measured a sample of its records (an event's carries its payload): ~150 ms a
-- pass over 30,000 events.
ALTER TABLE events ALTER COLUMN record SET STATISTICS 0, ALTER COLUMN response SET STATISTICS 0;
ALTER TABLE deliveries ALTER COLUMN record SET STATISTICS 0;
ALTER TABLE attempts ALTER COLUMN record SET STATISTICS 0;
ALTER TABLE idempotency ALTER COLUMN outcomes SET STATISTICS 0;

-- Compressed with lz4 where the server has it (PostgreSQL 14 or newer, built with lz4, as
-- Debian's, Ubuntu's and the official images are): an event of a few KB goes over the
-- inline limit and was compressed with pglz on every ingest, ~9 % of PostgreSQL's CPU under
-- load. Values stored before keep their compression; without lz4 nothing changes.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE events ALTER COLUMN record SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE events ALTER COLUMN response SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE deliveries ALTER COLUMN record SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE attempts ALTER COLUMN record SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'records stay compressed with pglz: %', SQLERRM;
END
$$;
