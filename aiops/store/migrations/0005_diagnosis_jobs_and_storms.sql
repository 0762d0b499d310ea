-- Diagnosis is a job kind of its own: jobs carry a priority (lower runs first: severity, then age) and an optional
-- key that makes enqueueing the same job twice a no-op. A triage records which job announced it, so that the
-- announcement goes out once whichever of the diagnosis and the announcement timer comes first.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN dedup_key VARCHAR(200);
CREATE UNIQUE INDEX jobs_dedup ON jobs (dedup_key);
-- Claiming walks the unfinished jobs in claim order and stops at the first claimable one; jobs_claim let the planner
-- gather every due job and sort them instead, a cost that grows with the backlog exactly when a storm makes one.
DROP INDEX jobs_claim;
CREATE INDEX jobs_open ON jobs (priority, id) WHERE state IN ('pending', 'running');
CREATE INDEX jobs_open_kind ON jobs (kind, priority, id) WHERE state IN ('pending', 'running');
ALTER TABLE triages ADD COLUMN announced_by VARCHAR(64);
ALTER TABLE triages ADD COLUMN diagnosed_at DOUBLE PRECISION;
-- Triages stored before this were announced and diagnosed by the job that stored them.
UPDATE triages SET announced_by = 'triage', diagnosed_at = created_at;

-- Storms: incidents opening within a short window with the same cause signature are diagnosed once, together.
CREATE TABLE clusters (
    id {ID},
    signature VARCHAR(64) NOT NULL,
    description TEXT NOT NULL,
    opened_at DOUBLE PRECISION NOT NULL,
    closes_at DOUBLE PRECISION NOT NULL,
    members INTEGER NOT NULL,
    lead_incident_id BIGINT NOT NULL REFERENCES incidents (id),
    diagnosis TEXT,
    diagnosed_at DOUBLE PRECISION
);
CREATE INDEX clusters_signature ON clusters (signature, closes_at);
ALTER TABLE incidents ADD COLUMN signature VARCHAR(64);
ALTER TABLE incidents ADD COLUMN cluster_id BIGINT REFERENCES clusters (id);
CREATE INDEX incidents_signature ON incidents (signature, opened_at);
CREATE INDEX incidents_cluster ON incidents (cluster_id, id);
