"""Edges of the notifications service: SMTP, the SMS provider, webhooks, files."""
