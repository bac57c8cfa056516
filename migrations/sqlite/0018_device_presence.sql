-- Where a device is connected in a cluster of dispatchd nodes on PostgreSQL (see the PostgreSQL
-- migration 0003_device_presence.sql): every hello counts up `connection_gen`, so the newest
-- connection is known across nodes, and `connected_node` names the node that holds it until it
-- closes. A single SQLite node keeps its connections in memory and leaves both as they are.
ALTER TABLE devices ADD COLUMN connection_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN connected_node TEXT;
