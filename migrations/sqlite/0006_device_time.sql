-- Officer actions carry the time they were tapped on the tablet. An event recorded from one has
-- `at` = that time, corrected by the device's clock offset and clamped between its order (or
-- message) and its arrival, and `received_at` = when the server received it; NULL elsewhere
-- (then `at` is the server's own time).
ALTER TABLE events ADD COLUMN received_at INTEGER;
