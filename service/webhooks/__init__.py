"""Outgoing webhooks: events POSTed to other services, signed (Standard Webhooks), retried."""
