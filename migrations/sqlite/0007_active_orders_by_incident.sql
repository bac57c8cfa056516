-- The attention review asks, for every open incident, whether any order still holds a unit:
-- a partial index of exactly the active states (`OrderState::ACTIVE`, in the same order) answers
-- it without reading the incident's finished orders.
CREATE INDEX orders_active_by_incident ON orders (incident_id)
    WHERE state IN ('queued', 'delivered', 'displayed', 'acknowledged', 'accepted');
