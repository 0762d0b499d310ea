"""The triage pipeline: correlate → match runbook → gather evidence → diagnose → plan actions → notify.

One module per stage; `runner.Pipeline` strings them together for one delivery.
"""
