"""Runbooks: the team's markdown runbooks, matched to incidents and rendered safely."""
