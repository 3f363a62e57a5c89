"""Money in: what labs pay against their invoices, matched to them, and the reports on what is overdue."""
