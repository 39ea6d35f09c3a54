"""The offline verifier: checks an exported range of audit records against the signed
checkpoints with the auditor's public key alone (no database, no chain key, no network).

    python -m auditor.offline --records export.json --checkpoints checkpoints.jsonl \\
        --public-key audit-public-key.pem

`export.json` is the body of `GET /v1/audit/export`, the checkpoints are the auditor's
checkpoint file (or `GET /v1/audit/checkpoints`, or the `audit.checkpoints` topic), the key is
`GET /v1/audit/public-key`. Prints the verdict as JSON; exits 0 if it holds, 1 if not.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from auditor import checkpoints


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
    parser.add_argument("--records", type=Path, required=True)
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--public-key", type=Path, required=True)
    args = parser.parse_args(argv)
    verdict = checkpoints.verify_export(
        json.loads(args.records.read_text())["records"],
        read_checkpoints(args.checkpoints),
        checkpoints.load_public_key(args.public_key),
    )
    print(json.dumps(dataclasses.asdict(verdict)))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
