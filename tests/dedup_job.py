"""A Ray job for the cluster test: the dedup stage over given documents files, once per partition
count, each into <out>/p<partitions>. Run with `ray job submit -- python -m tests.dedup_job ...`."""
from __future__ import annotations

import argparse
import json

from pipeline.stages.dedup import run_dedup
from tests.test_dedup_stage import make_cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--partitions", type=int, nargs="+", required=True)
    parser.add_argument("--verify-with", default="text")
    parser.add_argument("--files", nargs="+", required=True)
    args = parser.parse_args()
    for partitions in args.partitions:
        out = f"{args.out}/p{partitions}"
        stats = run_dedup(make_cfg(out, partitions, verify_with=args.verify_with), out, args.files)
        print(json.dumps({"partitions": partitions, "removed": stats["removed_by_reason"], "scale": stats["scale"]}))


if __name__ == "__main__":
    main()
