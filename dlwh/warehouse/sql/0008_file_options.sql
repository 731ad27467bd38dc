-- dlwh warehouse, schema version 8: the options a file was loaded with.
-- files.options: the ingest options given on the command line that change how a file reads (--tz,
-- --start, --run-id, --fields, --gpu, --interval-s), as a JSON object; NULL when none were given.
-- Ingesting an unchanged file again with other such options reloads it with them.

ALTER TABLE files ADD COLUMN IF NOT EXISTS options JSON;
