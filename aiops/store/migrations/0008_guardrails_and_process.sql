-- Guardrails for automatic remediation, and the times of the fault process the store did not keep yet.
-- The pause switch is one row (id 1), shared by every replica; each change is also in the audit trail.
CREATE TABLE remediation_switch (
    id INTEGER PRIMARY KEY,
    paused BOOLEAN NOT NULL,
    actor VARCHAR(255),
    channel VARCHAR(32),
    changed_at DOUBLE PRECISION NOT NULL
);
-- A proposal `auto` would have run at once but a guardrail (the pause switch, a budget) made wait for an
-- approval: which one, as a message. `alertname` is the alert rule it was planned for, for the per-rule budget.
ALTER TABLE proposals ADD COLUMN held TEXT;
ALTER TABLE proposals ADD COLUMN alertname VARCHAR(255);
CREATE INDEX proposals_decided ON proposals (decided_via, decided_at);
-- When the triage's announcement was claimed (the card went to the outbox): the "announced" stage.
ALTER TABLE triages ADD COLUMN announced_at DOUBLE PRECISION;
