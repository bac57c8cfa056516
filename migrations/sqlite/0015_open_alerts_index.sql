-- The console's list of open alerts reads the alert events only, oldest first, instead of
-- scanning every event ever recorded. The condition is exactly `ALERT_EVENT` of
-- server/src/store/escalation.rs (SQLite uses a partial index only for a query that repeats its
-- condition), written as comparisons so that the events that are not alerts pay three
-- comparisons and no index write.
CREATE INDEX events_alerts ON events (id)
    WHERE (kind = 'officer_emergency' OR kind = 'order_escalated' OR kind = 'attention_raised');
