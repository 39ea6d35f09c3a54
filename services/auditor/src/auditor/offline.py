"""The offline verifier: checks an exported range of audit records against the signed
checkpoints with the auditor's public key alone (no database, no chain key, no network).

    python -m auditor.offline --records export.json --checkpoints checkpoints.jsonl \\
        --public-key audit-public-key.pem

`export.json` is the body of `GET /v1/audit/export`, the checkpoints are the auditor's
checkpoint file (or `GET /v1/audit/checkpoints`, or the `audit.checkpoints` topic), the key is
`GET /v1/audit/public-key`. Prints the verdict as JSON; exits 0 if it holds, 1 if not.

    python -m auditor.offline --evidence evidence.zip [--public-key audit-public-key.pem]

checks a request's evidence pack (`GET /v1/audit/requests/{id}/evidence`): every record's
leaf, every inclusion proof against its checkpoint, every checkpoint's signature. Without
`--public-key`, the key the pack brings is used (and the verdict says so).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from auditor import checkpoints, evidence


def read_checkpoints(path: Path) -> list[checkpoints.Checkpoint]:
    """JSON lines (the checkpoint file), or the body of `GET /v1/audit/checkpoints`."""
    text = path.read_text()
    try:
        items = json.loads(text)["items"]
    except (json.JSONDecodeError, KeyError, TypeError):
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [checkpoints.Checkpoint.from_dict(item) for item in items]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=Path)
    parser.add_argument("--checkpoints", type=Path)
    parser.add_argument("--public-key", type=Path)
    parser.add_argument("--evidence", type=Path, help="a request's evidence pack (zip)")
    args = parser.parse_args(argv)
    if args.evidence is not None:
        return _check_pack(args.evidence, args.public_key)
    if args.records is None or args.checkpoints is None or args.public_key is None:
        parser.error("give --records, --checkpoints and --public-key, or --evidence")
    verdict = checkpoints.verify_export(
        json.loads(args.records.read_text())["records"],
        read_checkpoints(args.checkpoints),
        checkpoints.load_public_key(args.public_key),
    )
    print(json.dumps(dataclasses.asdict(verdict)))
    return 0 if verdict.ok else 1


def _check_pack(pack: Path, public_key: Path | None) -> int:
    key = checkpoints.load_public_key(public_key) if public_key is not None else None
    verdict = evidence.verify_pack(pack.read_bytes(), key)
    print(json.dumps(dataclasses.asdict(verdict)))
    if not verdict.ok:
        print(f"{pack}: NOT verified: " + "; ".join(verdict.problems), file=sys.stderr)
    elif verdict.key_from_pack:
        print(
            f"{pack}: verified with the key it brings (key_id {verdict.key_id}): compare it "
            "with the auditor's published key",
            file=sys.stderr,
        )
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
