"""Webhooks: the change feed POSTed to a party's endpoints, signed per Standard Webhooks."""
