"""Command line: `python -m devstack up|down|status|wipe|fetch-jars|demo|trace`."""

from __future__ import annotations

import argparse
import sys

from devstack import cloud, kafka, ldap, receiver, services
from devstack.config import SERVICES, StackConfig, repo_root
from devstack.proc import StackError
from devstack.stack import Stack


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    repo = repo_root()
    config = StackConfig.for_tests(repo) if args.profile == "test" else StackConfig.default(repo)
    stack = Stack(config, say=print)
    try:
        return _run(args, stack)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, stack: Stack) -> int:
    if args.command == "up":
        stack.up(fresh=args.fresh, scale=services.parse_scale(args.scale))
        _print_summary(stack)
    elif args.command == "down":
        stack.down()
        print("stopped")
    elif args.command == "status":
        for component in stack.status():
            state = f"running (pid {component.pid})" if component.running else "stopped"
            print(f"{component.name:<14} {state}")
    elif args.command == "wipe":
        stack.wipe()
        print(f"wiped state under {stack.config.root}")
    elif args.command == "fetch-jars":
        kafka.ensure_jars(stack.config)
        print(f"Kafka jars in {stack.config.kafka_libs}")
    elif args.command == "demo":
        # Imported here so a broken or half-written demo never stops `up`, `down` or `status`.
        from devstack import demo

        demo.run(stack.config)
    elif args.command == "openapi":
        from devstack import openapi

        if args.check:
            drifted = openapi.drifted(stack.config, stack.config.repo)
            for name in drifted:
                print(f"docs/openapi/{name}.json differs from what {name} serves")
            return 1 if drifted else 0
        for path in openapi.write(stack.config, stack.config.repo):
            print(f"wrote {path}")
    elif args.command == "trace":
        from devstack import traces

        print(traces.report(stack.config.traces_dir, args.request_id, sql=args.sql))
    return 0


def _print_summary(stack: Stack) -> None:
    config = stack.config
    print("\nservices:")
    for name, replica in sorted(
        services.running_instances(config), key=lambda item: (SERVICES.index(item[0]), item[1])
    ):
        print(f"  {services.instance_name(name, replica):<13} {stack.service_url(name, replica)}")
    print(f"kafka:         {config.bootstrap_servers}")
    print(f"postgres:      {stack.database_dsn('postgres')}")
    print(f"ldap:          {ldap.url(config)} ({ldap.BASE_DN}, admin {ldap.ADMIN_DN})")
    print(f"aws endpoint:  {cloud.endpoint_url(config)} (region {cloud.REGION})")
    print(f"webhooks:      {receiver.url(config)} (licence vendor and MDM; /_test/deliveries)")
    print(f"admin API key: {config.admin_key_file}")
    print(f"people's keys: {config.root / 'keys'}/<name>.key (deploy/seed/organisation.json)")
    print(f"logs:          {config.logs_dir}")
    print(f"traces:        {config.traces_dir}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument(
        "--profile",
        choices=["default", "test"],
        default="default",
        help="which stack: `make up`'s (default) or the test suite's",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start everything that is not running, wait until ready")
    up.add_argument("--fresh", action="store_true", help="stop and wipe all state first")
    up.add_argument(
        "--scale",
        default="",
        metavar="SERVICE=N ...",
        help='replicas per service, e.g. "allocator=3 deployer=2" (default 1 each)',
    )
    commands.add_parser("down", help="stop services, then Kafka, then PostgreSQL")
    commands.add_parser("status", help="what is running, with pids")
    commands.add_parser("wipe", help="delete data, logs and keys (stack must be down)")
    commands.add_parser("fetch-jars", help="download the Kafka broker's jars with Maven")
    commands.add_parser("demo", help="walk a request through the running stack")
    documents = commands.add_parser(
        "openapi", help="write each service's OpenAPI document to docs/openapi/"
    )
    documents.add_argument(
        "--check", action="store_true", help="only report the documents that differ"
    )
    trace = commands.add_parser("trace", help="a request's trace as a tree, with durations")
    trace.add_argument("request_id")
    trace.add_argument("--sql", action="store_true", help="each SQL statement, not their sum")
    return parser


if __name__ == "__main__":
    sys.exit(main())
