"""The store: every durable fact (deliveries, incidents, alerts, triages, notifications, events, jobs)."""
