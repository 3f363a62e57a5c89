"""The compensation app's models, one module per part: ``ledger`` (accounts, entries, lines, escrow
releases), ``usage`` (tariffs, manifests and their lines), ``settlement`` (settlements, statements, invoices,
distributions) and ``documents`` (exports). Every public model and choices class is re-exported here, so
``from compensation.models import X`` names any of them.
"""

from compensation.models.documents import (
    EXPORT_JOB,
    Export,
    ExportFormat,
    ExportStatus,
)
from compensation.models.ledger import (
    ESCROW_ACCOUNT_KINDS,
    PARTY_ACCOUNT_KINDS,
    Account,
    AccountKind,
    EntryKind,
    EscrowRelease,
    LedgerEntry,
    LedgerLine,
)
from compensation.models.settlement import (
    DISTRIBUTION_JOB,
    SETTLEMENT_JOB,
    DistributionShare,
    DistributionStatus,
    Invoice,
    InvoiceLine,
    InvoiceSection,
    MarketShareDistribution,
    Settlement,
    SettlementStatus,
    Statement,
    StatementLine,
    StatementLineKind,
)
from compensation.models.unclaimed import HoldEndAction, HoldPolicy, UnclaimedNotice
from compensation.models.usage import (
    MANIFEST_JOB,
    ManifestFormat,
    ManifestLine,
    ManifestStatus,
    MatchKind,
    Outcome,
    Tariff,
    UsageManifest,
    UsageUnit,
    # Migration 0003 names the upload path by this dotted path (compensation.models._manifest_upload_to).
    _manifest_upload_to,
)

__all__ = [
    "DISTRIBUTION_JOB",
    "ESCROW_ACCOUNT_KINDS",
    "EXPORT_JOB",
    "MANIFEST_JOB",
    "PARTY_ACCOUNT_KINDS",
    "SETTLEMENT_JOB",
    "Account",
    "AccountKind",
    "DistributionShare",
    "DistributionStatus",
    "EntryKind",
    "EscrowRelease",
    "Export",
    "ExportFormat",
    "ExportStatus",
    "HoldEndAction",
    "HoldPolicy",
    "Invoice",
    "InvoiceLine",
    "InvoiceSection",
    "LedgerEntry",
    "LedgerLine",
    "ManifestFormat",
    "ManifestLine",
    "ManifestStatus",
    "MarketShareDistribution",
    "MatchKind",
    "Outcome",
    "Settlement",
    "SettlementStatus",
    "Statement",
    "StatementLine",
    "StatementLineKind",
    "Tariff",
    "UnclaimedNotice",
    "UsageManifest",
    "UsageUnit",
    "_manifest_upload_to",
]
