-- Remediation: proposals bound to an exact argv and host, their executions (at most one each), and the audit trail.
CREATE TABLE proposals (
    id {ID},
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id),
    action_id VARCHAR(64) NOT NULL,
    host VARCHAR(255),
    argv TEXT NOT NULL,
    argv_hash VARCHAR(64) NOT NULL,
    risk VARCHAR(8) NOT NULL,
    origin VARCHAR(16) NOT NULL,
    reason TEXT NOT NULL,
    state VARCHAR(16) NOT NULL,
    detail TEXT,
    timeout DOUBLE PRECISION NOT NULL,
    output_cap INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    decided_by VARCHAR(255),
    decided_via VARCHAR(32),
    decided_at DOUBLE PRECISION,
    UNIQUE (delivery_id, action_id, argv_hash)
);
CREATE INDEX proposals_incident ON proposals (incident_id, id);
CREATE INDEX proposals_state ON proposals (state, expires_at);

CREATE TABLE executions (
    id {ID},
    proposal_id BIGINT NOT NULL UNIQUE REFERENCES proposals (id),
    action_id VARCHAR(64) NOT NULL,
    host VARCHAR(255) NOT NULL,
    argv TEXT NOT NULL,
    argv_hash VARCHAR(64) NOT NULL,
    state VARCHAR(16) NOT NULL,
    exit_status INTEGER,
    stdout TEXT,
    stderr TEXT,
    truncated INTEGER NOT NULL,
    error TEXT,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION
);
CREATE INDEX executions_host ON executions (host, action_id, started_at);

CREATE TABLE audit (
    id {ID},
    at DOUBLE PRECISION NOT NULL,
    incident_id BIGINT,
    proposal_id BIGINT,
    kind VARCHAR(32) NOT NULL,
    actor VARCHAR(255),
    channel VARCHAR(32),
    argv_hash VARCHAR(64),
    detail TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_incident ON audit (incident_id, id);

CREATE TABLE secrets (
    name VARCHAR(64) PRIMARY KEY,
    value TEXT NOT NULL
);
