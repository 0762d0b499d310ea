-- Correlation writes a big delivery's alerts in chunks, one transaction each, so that intake is not locked out
-- while it runs. What a re-run after a crash between chunks needs is kept in the store: whether the delivery
-- opened its incident (`deliveries.incident_id` is set in the first chunk's transaction), and per alert the
-- delivery that turned it firing, so that the alerts a delivery newly fired are known once they are written.
ALTER TABLE deliveries ADD COLUMN opened_incident BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE alerts ADD COLUMN firing_delivery_id BIGINT;
