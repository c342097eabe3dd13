"""``agentfm-py peers``: the trust table, one peer's summary, and commenting on a peer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agentfm._cli_support import EXIT_OK, Console, fit_peer_ids, make_client

if TYPE_CHECKING:
    import argparse


def add_peers_parser(sub: Any) -> None:
    """Register ``peers``, ``peers show ID`` and ``peers comment ID TEXT``."""
    p = sub.add_parser("peers", help="table of peers with their reputation and trust")
    p.add_argument(
        "--offline", action="store_true", help="also list offline peers the ledger knows"
    )
    peers_sub = p.add_subparsers(dest="peers_command", metavar="SUBCOMMAND")
    show = peers_sub.add_parser("show", help="one peer's summary, reputation and recent log")
    show.add_argument("peer_id", help="peer id (12D3KooW…)")
    show.add_argument("--limit", type=int, default=10, help="log entries to show (default 10)")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    comment = peers_sub.add_parser("comment", help="comment on a peer, optionally rating it")
    comment.add_argument("peer_id", help="peer id (12D3KooW…)")
    comment.add_argument("text", help="the comment")
    comment.add_argument("--rating", type=float, help="honesty rating in [-1, 1]")
    comment.add_argument("--language", default="en", help="language tag (default en)")


def cmd_peers(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run the ``peers`` command; returns the exit code."""
    with make_client(args) as client:
        if args.peers_command == "show":
            return _show(client, args, out)
        if args.peers_command == "comment":
            receipt = client.peers.comment(
                args.peer_id, args.text, rating=args.rating, language=args.language
            )
            out.print(f"recorded: cid {receipt.cid}")
            out.print(f"ledger entry {receipt.ledger_hash}")
            return EXIT_OK
        workers = client.peers.list(include_offline=args.offline)
        gateway = client.gateway_url
    columns = ["agent", "honesty", "dispatch", "online", "status", "peer id"]
    rows = [
        [
            w.name or "-",
            f"{w.honesty_score or 0:+.2f}",
            "allowed" if w.dispatch_allowed else (w.dispatch_refuse_reason or "refused"),
            "yes" if w.online else "no",
            w.status or "-",
            w.peer_id,
        ]
        for w in workers
    ]
    fit_peer_ids(rows, columns, out, err)
    out.table(columns, rows, title=f"{len(rows)} peer(s) on {gateway}")
    return EXIT_OK


def _show(client: Any, args: argparse.Namespace, out: Console) -> int:
    summary = client.peers.get(args.peer_id)
    score = client.peers.reputation(args.peer_id)
    page = client.peers.log(args.peer_id, limit=args.limit)
    if args.json:
        body = {
            "summary": summary.model_dump(mode="json"),
            "reputation": score.model_dump(mode="json"),
            "log": page.model_dump(mode="json"),
        }
        out.write(json.dumps(body, indent=2) + "\n")
        return EXIT_OK
    out.print(f"peer      {summary.peer_id}")
    out.print(
        f"agent     {summary.agent_name or '-'} ({'online' if summary.online else 'offline'})"
    )
    out.print(f"honesty   {score.honesty:+.3f} from {score.rating_count} rating(s)")
    dispatch = "allowed" if summary.dispatch_allowed else summary.dispatch_refuse_reason
    out.print(f"dispatch  {dispatch}")
    raters = summary.rater_summary
    out.print(
        f"entries   {summary.entries_count} ({raters.verified_raters_count} verified, "
        f"{raters.unverified_raters_count} unverified rater(s))"
    )
    for entry in page.entries:
        when = entry.received_at.isoformat(timespec="seconds")
        if entry.kind == "Rating":
            detail = f"{entry.dimension} {entry.score:+.2f} ({entry.context or '-'})"
        else:
            detail = f"comment {entry.text_cid or ''}"
        out.print(f"  {when}  {detail}")
    return EXIT_OK
