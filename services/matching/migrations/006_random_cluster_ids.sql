-- A family cluster's id was the smallest of its nodes' names (a child's, parent's or
-- household's pseudonym), and its hash the key of the family's match events: computable
-- from a pseudonym without any key, and left behind as a label of the siblings when that
-- child was erased. Every cluster gets a random id instead, in every place that names it.
CREATE TEMPORARY TABLE relabelled ON COMMIT DROP AS
SELECT old, replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')
    AS new
FROM (
    SELECT cluster AS old FROM family_nodes
    UNION SELECT key FROM matches WHERE kind = 'family'
    UNION SELECT cluster FROM family_keys
) AS clusters;

UPDATE family_nodes n SET cluster = r.new FROM relabelled r WHERE n.cluster = r.old;
UPDATE matches m SET key = r.new FROM relabelled r WHERE m.kind = 'family' AND m.key = r.old;
UPDATE family_keys f SET cluster = r.new FROM relabelled r WHERE f.cluster = r.old;
