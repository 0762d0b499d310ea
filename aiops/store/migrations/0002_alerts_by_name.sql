-- Past incidents of the same alert are looked up by alert name, newest first.
CREATE INDEX alerts_name ON alerts (name, incident_id);
