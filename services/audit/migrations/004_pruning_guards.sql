-- A pruning may only cover entries past the shortest retention any policy allows (one
-- year), recorded before its cutoff, and never the last entry (the tree keeps its size).
CREATE OR REPLACE FUNCTION prunings_are_lawful() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.cutoff > now() - interval '1 year' THEN
        RAISE EXCEPTION 'a pruning cutoff must lie at least a year back, not %', NEW.cutoff
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.upto > coalesce((SELECT max(leaf_index) FROM entries), 0) THEN
        RAISE EXCEPTION 'a pruning never removes the last entry'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM entries WHERE leaf_index < NEW.upto AND recorded_at >= NEW.cutoff)
    THEN
        RAISE EXCEPTION 'a pruning covers only entries recorded before its cutoff'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS prunings_lawful ON prunings;
CREATE TRIGGER prunings_lawful BEFORE INSERT ON prunings
    FOR EACH ROW EXECUTE FUNCTION prunings_are_lawful();
