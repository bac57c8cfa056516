-- Where a device is connected across the nodes of a cluster: each hello counts up
-- `connection_gen` (the newest connection wins: a node closes its older one with 4009), and
-- `connected_node` names the node holding it (its listener's application_name) until the
-- connection closes. A node that died leaves its name behind; a name no live connection carries
-- counts as disconnected. SQLite migration 0018_device_presence.sql adds the same columns.
ALTER TABLE devices ADD COLUMN connection_gen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN connected_node TEXT;
