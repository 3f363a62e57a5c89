"""Settlement: closing a period of the ledger into holder statements, lab invoices and payouts (``services``),
the closed-books rule for late entries (``periods``), market-share distribution of escrow nobody claimed
(``distribution``) and their reads (``selectors``). It reads and posts to the ledger; it never prices usage.
"""
