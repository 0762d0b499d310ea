-- The outbox: chat messages are delivered by `deliver` jobs within each channel's rate limit, and an incident's
-- message handle is kept so that later announcements edit the same card.
CREATE TABLE messages (
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    channel VARCHAR(64) NOT NULL,
    handle VARCHAR(255) NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (incident_id, channel)
);
CREATE INDEX notifications_channel_state ON notifications (channel, state, id);
CREATE INDEX notifications_channel_sent ON notifications (channel, sent_at);
