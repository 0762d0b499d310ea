"""HTTP: the webhook, the API and pages, health and metrics. `app.create_app` assembles them."""
