-- The guards of the append-only log look up the log's own tables: with the search path
-- fixed here, a temporary table of the same name (which a session could make) cannot
-- stand in for them.
ALTER FUNCTION entries_are_append_only() SET search_path = audit, pg_catalog, pg_temp;
ALTER FUNCTION entries_prune_only() SET search_path = audit, pg_catalog, pg_temp;
ALTER FUNCTION prunings_are_lawful() SET search_path = audit, pg_catalog, pg_temp;
