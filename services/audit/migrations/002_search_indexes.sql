-- The privacy officer searches by user (actor or on whose behalf), action and period;
-- subjects already have their GIN index. Indexes only: the entries stay as written.
CREATE INDEX IF NOT EXISTS entries_actor_idx ON entries (actor_id, leaf_index);
CREATE INDEX IF NOT EXISTS entries_on_behalf_idx ON entries (on_behalf_of, leaf_index)
    WHERE on_behalf_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_action_idx ON entries (action, leaf_index);
CREATE INDEX IF NOT EXISTS entries_occurred_idx ON entries (occurred_at);
