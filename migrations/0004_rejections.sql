-- A rejection is remembered while the platform has the call, not by its id alone: the queue
-- tells which read of the platform's calls can show it gone, and the call's start (milliseconds
-- since the Unix epoch, the platform's clock) tells a later call reusing the id apart. Rows
-- written before have neither; their rejected_at stands in for the start.
ALTER TABLE rejected_calls ADD COLUMN queue_id BIGINT;
ALTER TABLE rejected_calls ADD COLUMN call_started BIGINT;
