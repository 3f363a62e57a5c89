"""The change feed: the status changes after a cursor, in the one JSON form the API, webhooks and snapshots share."""
