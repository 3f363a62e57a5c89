"""Documents: files made from what the other parts hold. Exports of statements and invoices as CSV, XLSX or
PDF, built in the background (``exports``), and the staff reports (``reports``) with their admin pages
(``views``). They read the ledger, usage and settlement and write only their own ``Export`` rows.
"""
