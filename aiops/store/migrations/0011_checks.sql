-- Checks' results. Every run of every check is kept (`check_results`), so the report and the pages can say what
-- each check last found and since when it has been failing. `check_states` is one row per check: whether it is
-- failing now and which delivery opened its incident, so that a failure enters the pipeline once and the next
-- pass resolves it.
CREATE TABLE check_results (
    id {ID},
    check_id VARCHAR(255) NOT NULL,
    title TEXT NOT NULL,
    severity VARCHAR(16) NOT NULL,
    ok BOOLEAN NOT NULL,
    reason TEXT NOT NULL,
    value DOUBLE PRECISION,
    detail TEXT,
    took DOUBLE PRECISION NOT NULL,
    checked_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX check_results_latest ON check_results (check_id, checked_at);
CREATE INDEX check_results_at ON check_results (checked_at);
CREATE TABLE check_states (
    check_id VARCHAR(255) PRIMARY KEY,
    failing BOOLEAN NOT NULL,
    since DOUBLE PRECISION NOT NULL,
    last_result_id BIGINT REFERENCES check_results (id),
    delivery_id BIGINT REFERENCES deliveries (id)
);
