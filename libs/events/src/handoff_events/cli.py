"""`handoff`: the operator's command-line tool.

    handoff topics list                      the catalogue: topics, owners, keys, cleanup
    handoff topics provision [--partitions N --replication-factor R]
    handoff asyncapi [-o FILE]               write the AsyncAPI 3.0 document

Every command reads KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:19092) and
HANDOFF_TOPIC_PREFIX like the services do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from handoff_events.topics import CATALOGUE, DEFAULT_PARTITIONS, partitions_for

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}
EXTENSIONS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def _bootstrap(args: argparse.Namespace) -> str:
    return str(args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"))


def _prefix(args: argparse.Namespace) -> str:
    return str(
        args.prefix if args.prefix is not None else os.environ.get("HANDOFF_TOPIC_PREFIX", "")
    )


def cmd_topics_list(args: argparse.Namespace) -> int:
    rows = [
        (
            t.name,
            ",".join(t.writers),
            ",".join(t.readers) or "-",
            t.key,
            t.cleanup,
            str(partitions_for(t, args.partitions)),
        )
        for t in CATALOGUE
    ]
    if args.json:
        print(
            json.dumps(
                [
                    dict(
                        zip(
                            ("topic", "writers", "readers", "key", "cleanup", "partitions"),
                            r,
                            strict=True,
                        )
                    )
                    for r in rows
                ],
                indent=2,
            )
        )
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    header = ("topic", "writers", "readers", "key", "cleanup", "partitions")
    for row in (header, *rows):
        print("  ".join(col.ljust(w) for col, w in zip(row, widths, strict=True)))
    return 0


def cmd_topics_provision(args: argparse.Namespace) -> int:
    from handoff_events.provision import provision

    bootstrap = _bootstrap(args)
    print(
        f"provisioning {len(CATALOGUE)} topics on {bootstrap} (prefix {_prefix(args)!r}, "
        f"{args.partitions} partitions, RF {args.replication_factor})",
        flush=True,
    )
    report = asyncio.run(
        provision(
            bootstrap,
            prefix=_prefix(args),
            partitions=args.partitions,
            replication_factor=args.replication_factor,
            progress=lambda msg: print(f"  {msg}", flush=True),
        )
    )
    print(f"created {len(report.created)}, re-configured {len(report.updated)}")
    for problem in report.mismatched:
        print(f"  MISMATCH {problem}", file=sys.stderr)
    if not report.ok:
        print(
            "partition counts differ from the catalogue: refusing to change them "
            "(it would break co-partitioning); migrate instead",
            file=sys.stderr,
        )
        return 2
    return 0


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from handoff_events.asyncapi import build

    text = json.dumps(build(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="handoff",
        description="Operate Handoff: topics, contracts, state and dead letters.",
    )
    top.add_argument(
        "--bootstrap",
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:19092)",
    )
    top.add_argument("--prefix", help="topic prefix (default: $HANDOFF_TOPIC_PREFIX or none)")
    sub = top.add_subparsers(dest="command", required=True)

    topics = sub.add_parser("topics", help="the topic catalogue").add_subparsers(
        dest="topics_cmd", required=True
    )
    lst = topics.add_parser("list", help="print the catalogue")
    lst.add_argument(
        "--partitions",
        type=int,
        default=int(os.environ.get("HANDOFF_PARTITIONS", DEFAULT_PARTITIONS)),
    )
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(func=cmd_topics_list)
    prov = topics.add_parser("provision", help="create or update every topic, idempotently")
    prov.add_argument(
        "--partitions",
        type=int,
        default=int(os.environ.get("HANDOFF_PARTITIONS", DEFAULT_PARTITIONS)),
        help="partitions of every co-partitioned topic (default 12)",
    )
    prov.add_argument(
        "--replication-factor",
        type=int,
        default=int(os.environ.get("HANDOFF_REPLICATION_FACTOR", "1")),
        help="1 for a single local broker, 3 in production (min.insync.replicas follows: 2 when RF>=3)",
    )
    prov.set_defaults(func=cmd_topics_provision)

    api = sub.add_parser("asyncapi", help="write the AsyncAPI 3.0 document")
    api.add_argument("-o", "--output", help="file to write (default: stdout)")
    api.set_defaults(func=cmd_asyncapi)
    for extend in EXTENSIONS:
        extend(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


import handoff_events.cli_ops  # noqa: E402, F401  (registers the operator commands)

if __name__ == "__main__":
    raise SystemExit(main())
