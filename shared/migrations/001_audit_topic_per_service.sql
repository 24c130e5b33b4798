-- Each service writes its audit events to a topic of its own, audit.events.<service>
-- (the schema's name), and may write no other: events an earlier version queued for the
-- shared audit.events go to this service's own topic instead, or the relay would stall
-- on them (that topic is no longer this service's to write).
UPDATE outbox SET topic = topic || '.' || current_schema()
WHERE topic LIKE '%audit.events';
