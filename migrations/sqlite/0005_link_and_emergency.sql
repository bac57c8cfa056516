-- Tablet links and officer emergencies.

-- Since when a unit's tablet has had no live connection, once that lasted longer than the
-- configured `link_lost_secs` (NULL: linked, or not yet long enough). A unit without a link is
-- shown as such and is not recommended; its next connection clears it.
ALTER TABLE units ADD COLUMN link_lost_at INTEGER;

-- For an incident opened by an officer's emergency button: that officer's unit, which is never
-- recommended for it.
ALTER TABLE incidents ADD COLUMN emergency_unit_id INTEGER REFERENCES units (id);
