-- A unit taken out of the fleet by an administrator (sold, merged, long in the workshop) keeps
-- its history but is never recommended, dispatched or enrolled until it is enabled again.
ALTER TABLE units ADD COLUMN disabled_at INTEGER;
