"""The ``optout`` command: ``sync``, ``status``, ``check``, ``filter`` and ``log`` (the transparency log)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from optout_client.filter import FilterError, filter_file
from optout_client.http import HttpClient, RegistryHTTPError
from optout_client.registry import PURPOSES, Registry
from optout_client.signing import SignatureError
from optout_client.state import NotSynced
from optout_client.sync import SyncError, sync
from optout_client.transparency import LogError, LogVerifier, LogWitness

__all__ = ["main"]

DEFAULT_DIR = "optout-registry"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optout",
        description="Lab-side client of the AI-training opt-out registry: sync a signed snapshot, then check and "
        "filter identifiers offline.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add_dir(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--dir",
            default=os.environ.get("OPTOUT_DIR", DEFAULT_DIR),
            help=f"the local copy (default: $OPTOUT_DIR or ./{DEFAULT_DIR})",
        )

    def add_purpose(command: argparse.ArgumentParser) -> None:
        command.add_argument("--purpose", default="train-ai", choices=PURPOSES, help="default: train-ai")

    def add_api(command: argparse.ArgumentParser) -> None:
        command.add_argument("--api-key", default=None, help="an API key with the lookup scope (or $OPTOUT_API_KEY)")

    command = commands.add_parser("sync", help="download and verify the latest snapshot, then apply the change feed")
    command.add_argument("--registry", required=True, help="the registry's base URL, e.g. https://registry.example")
    add_dir(command)
    add_api(command)
    command.add_argument(
        "--pin-key",
        default=os.environ.get("OPTOUT_PIN_KEY"),
        help="trust only this signing key: its id (16 hex digits) or its base64 raw Ed25519 public key",
    )
    command.add_argument("--page-size", type=int, default=10_000, help="changes per feed page (max 10000)")
    command.add_argument("--quiet", action="store_true")

    command = commands.add_parser("status", help="what the local copy holds")
    add_dir(command)

    command = commands.add_parser("check", help="answer identifiers offline, one line each")
    command.add_argument("scheme", help="isbn, issn, ismn, isrc, iswc, isan, doi, url, sha256, iscc, uci or kcc")
    command.add_argument("values", nargs="+")
    add_dir(command)
    add_purpose(command)
    command.add_argument("--json", action="store_true", help="one JSON object a line")

    command = commands.add_parser("filter", help="split a CSV, JSON Lines or Parquet file into kept and removed rows")
    command.add_argument("--in", dest="input", required=True, type=Path)
    command.add_argument("--column", required=True, help="the column holding the identifier")
    scheme = command.add_mutually_exclusive_group(required=True)
    scheme.add_argument("--scheme", help="the scheme of every row's identifier")
    scheme.add_argument("--scheme-column", help="the column holding each row's scheme")
    command.add_argument("--kept", required=True, type=Path)
    command.add_argument("--removed", required=True, type=Path)
    command.add_argument("--report", type=Path, help="write the filtering report (JSON) here")
    command.add_argument("--format", choices=("csv", "jsonl", "parquet"), help="default: from the file name")
    command.add_argument("--keep-invalid", action="store_true", help="keep rows whose identifier is invalid")
    command.add_argument("--batch-size", type=int, default=20_000, help="rows read at a time (default 20000)")
    command.add_argument(
        "--verify-online",
        action="store_true",
        help="send the rows the snapshot removes to the lookup API and keep its signed receipts",
    )
    command.add_argument("--registry", help="for --verify-online (default: the registry the copy was synced from)")
    add_api(command)
    add_purpose(command)
    add_dir(command)

    log = commands.add_parser("log", help="watch the registry's transparency log")
    log_commands = log.add_subparsers(dest="log_command", required=True)
    for name, text in (
        ("check", "fetch the latest checkpoint, verify its signature and that it extends the last one seen"),
        ("prove", "verify that event INDEX is in the last checkpoint seen, and print it"),
    ):
        sub = log_commands.add_parser(name, help=text)
        sub.add_argument("--registry", required=True, help="the registry's base URL")
        sub.add_argument(
            "--key",
            default=os.environ.get("OPTOUT_LOG_KEY"),
            required=not os.environ.get("OPTOUT_LOG_KEY"),
            help="the log's verifier key, <origin>+<hash>+<key> (or $OPTOUT_LOG_KEY); get it once from /log/key",
        )
        sub.add_argument(
            "--witness",
            type=Path,
            default=Path(os.environ.get("OPTOUT_LOG_WITNESS", "optout-log-witness.json")),
            help="the file keeping the last checkpoint seen (default: ./optout-log-witness.json)",
        )
        if name == "prove":
            sub.add_argument("--index", type=int, required=True, help="the event's leaf index")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "sync":
            return _sync(arguments)
        if arguments.command == "status":
            print(json.dumps(Registry.open(arguments.dir).describe(), indent=2))
            return 0
        if arguments.command == "check":
            return _check(arguments)
        if arguments.command == "log":
            return _log(arguments)
        return _filter(arguments)
    except LogError as error:
        # A checkpoint or proof that does not verify (a split view included): evidence, not a usage error.
        print(f"optout {arguments.command}: LOG NOT VERIFIED: {error}", file=sys.stderr)
        return 3
    except (SyncError, SignatureError, FilterError, RegistryHTTPError, NotSynced, ValueError, OSError) as error:
        print(f"optout {arguments.command}: {error}", file=sys.stderr)
        return 2


def _api_key(arguments: argparse.Namespace) -> str | None:
    return arguments.api_key or os.environ.get("OPTOUT_API_KEY") or None


def _sync(arguments: argparse.Namespace) -> int:
    result = sync(
        arguments.registry,
        arguments.dir,
        api_key=_api_key(arguments),
        pin_key=arguments.pin_key,
        page_size=arguments.page_size,
        progress=None if arguments.quiet else (lambda message: print(message, file=sys.stderr)),
    )
    print(
        json.dumps(
            {
                "snapshot_id": result.snapshot_id,
                "as_of": result.as_of,
                "snapshot_cursor": result.snapshot_cursor,
                "cursor": result.cursor,
                "new_snapshot": result.new_snapshot,
                "files_downloaded": result.downloaded_files,
                "files_reused": result.reused_files,
                "changes_applied": result.changes_applied,
            }
        )
    )
    return 0


def _check(arguments: argparse.Namespace) -> int:
    registry = Registry.open(arguments.dir)
    all_permitted = True
    for value in arguments.values:
        verdict = registry.check(arguments.scheme, value, arguments.purpose)
        all_permitted &= verdict.may_train
        if arguments.json:
            print(json.dumps({**verdict.__dict__, "snapshot_id": registry.snapshot_id, "cursor": registry.cursor}))
        else:
            answer = "may train" if verdict.may_train else "NOT PERMITTED" if verdict.status != "invalid" else "INVALID"
            detail = f" ({verdict.reason})" if verdict.reason else ""
            print(f"{value}\t{answer}{detail}\t{verdict.key or ''}")
    return 0 if all_permitted else 1


def _log(arguments: argparse.Namespace) -> int:
    client = HttpClient(arguments.registry)
    witness = LogWitness.load(arguments.witness, LogVerifier.parse(arguments.key))
    if arguments.log_command == "check":
        checkpoint = witness.update(client)
        print(json.dumps({**checkpoint.reference(), "verified": True}))
        return 0
    print(json.dumps(witness.prove_event(client, arguments.index), ensure_ascii=False))
    return 0


def _filter(arguments: argparse.Namespace) -> int:
    registry = Registry.open(arguments.dir)
    online = None
    if arguments.verify_online:
        online = HttpClient(arguments.registry or registry.registry_url, api_key=_api_key(arguments))
    report = filter_file(
        registry,
        input_path=arguments.input,
        column=arguments.column,
        kept_path=arguments.kept,
        removed_path=arguments.removed,
        scheme=arguments.scheme,
        scheme_column=arguments.scheme_column,
        purpose=arguments.purpose,
        keep_invalid=arguments.keep_invalid,
        file_format=arguments.format,
        batch_size=arguments.batch_size,
        report_path=arguments.report,
        online=online,
    )
    print(json.dumps({"counts": report["counts"], "snapshot_id": report["snapshot_id"], "cursor": report["cursor"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
