-- The first schema. Times are seconds since the epoch (UTC) in DOUBLE PRECISION on both engines;
-- JSON documents are TEXT. {ID} is the engine's auto-increment primary key.

CREATE TABLE deliveries (
    id {ID},
    dedup_key VARCHAR(64) NOT NULL UNIQUE,
    group_key TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    receiver TEXT NOT NULL,
    alert_count INTEGER NOT NULL,
    truncated_alerts INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    last_received_at DOUBLE PRECISION NOT NULL,
    times_received INTEGER NOT NULL,
    incident_id BIGINT,
    change VARCHAR(16)
);
CREATE INDEX deliveries_group_key ON deliveries (group_key);

CREATE TABLE incidents (
    id {ID},
    group_key TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    title TEXT NOT NULL,
    severity VARCHAR(64) NOT NULL,
    labels TEXT NOT NULL,
    opened_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    resolved_at DOUBLE PRECISION,
    last_received_at DOUBLE PRECISION NOT NULL,
    repeats INTEGER NOT NULL
);
CREATE UNIQUE INDEX incidents_one_open_per_group ON incidents (group_key) WHERE status = 'open';
CREATE INDEX incidents_status ON incidents (status, id);

CREATE TABLE alerts (
    id {ID},
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    fingerprint VARCHAR(64) NOT NULL,
    starts_at DOUBLE PRECISION NOT NULL,
    name TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    ends_at DOUBLE PRECISION,
    generator_url TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (incident_id, fingerprint, starts_at)
);

CREATE TABLE triages (
    id {ID},
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    delivery_id BIGINT NOT NULL UNIQUE REFERENCES deliveries (id),
    runbook TEXT NOT NULL,
    evidence TEXT NOT NULL,
    diagnosis TEXT NOT NULL,
    proposals TEXT NOT NULL,
    errors TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX triages_incident ON triages (incident_id, id);

CREATE TABLE notifications (
    id {ID},
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    dedup_key VARCHAR(200) NOT NULL UNIQUE,
    channel VARCHAR(64) NOT NULL,
    purpose VARCHAR(32) NOT NULL,
    state VARCHAR(16) NOT NULL,
    body TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    sent_at DOUBLE PRECISION
);
CREATE INDEX notifications_incident ON notifications (incident_id, id);

CREATE TABLE events (
    id {ID},
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    at DOUBLE PRECISION NOT NULL,
    kind VARCHAR(64) NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX events_incident ON events (incident_id, id);

CREATE TABLE jobs (
    id {ID},
    kind VARCHAR(32) NOT NULL,
    serial_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    run_after DOUBLE PRECISION NOT NULL,
    lease_owner VARCHAR(128),
    lease_expires_at DOUBLE PRECISION,
    last_error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION
);
CREATE INDEX jobs_claim ON jobs (state, run_after, id);
CREATE INDEX jobs_serial ON jobs (serial_key, id);
