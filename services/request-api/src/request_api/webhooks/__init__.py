"""Telling callers when things finish: the activity journal, webhook subscriptions with their
deliveries, and a request's events as Server-Sent Events."""
