-- Verification: after an execution, whether the fix worked. One row per execution, decided once (`outcome` stays
-- NULL until then); `automatic` says the policy ran it (`remediation.mode: auto`) rather than a person's approval.
CREATE TABLE verifications (
    id {ID},
    execution_id BIGINT NOT NULL UNIQUE REFERENCES executions (id),
    proposal_id BIGINT NOT NULL REFERENCES proposals (id),
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    action_id VARCHAR(64) NOT NULL,
    host VARCHAR(255) NOT NULL,
    automatic BOOLEAN NOT NULL,
    outcome VARCHAR(16),
    started_at DOUBLE PRECISION NOT NULL,
    deadline DOUBLE PRECISION NOT NULL,
    decided_at DOUBLE PRECISION,
    recovered_after DOUBLE PRECISION,
    detail TEXT
);
CREATE INDEX verifications_incident ON verifications (incident_id, action_id);
CREATE INDEX verifications_automatic ON verifications (automatic, decided_at);

-- The circuit breaker of automatic execution: one row, tripped while `tripped_at` is set; a reset clears it.
CREATE TABLE breaker (
    name VARCHAR(16) PRIMARY KEY,
    tripped_at DOUBLE PRECISION,
    reason TEXT,
    reset_at DOUBLE PRECISION,
    reset_by VARCHAR(255)
);
