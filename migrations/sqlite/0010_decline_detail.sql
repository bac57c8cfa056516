-- A decline's reason is a code (busy, too_far, vehicle_problem, other); what `other` means, in
-- the officer's words, is kept beside it. Reasons stored before codes stay as they were.
ALTER TABLE orders ADD COLUMN decline_detail TEXT;
