"""``make fuzz``: the long run. Thousands of hostile plans through the loader and every verb.

    python tests/hostile/fuzz.py [--examples N] [--seed S]

Prints the counts the issue asks for: cases run, accepted, refused, crashes (tracebacks). Any
crash fails the run with the smallest failing input hypothesis finds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings

from hostile.oracle import PLAN_VERBS, assert_no_crash, plan_argv, run_cli
from hostile.strategies import plan_texts
from hostile.test_fuzz_plans import check_loader


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    counts: Counter[str] = Counter()
    verbs = sorted(PLAN_VERBS)
    started = time.monotonic()

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=plan_texts())
    def case(data: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="canaryflow-fuzz-") as tmp:
            folder = Path(tmp)
            outcome = check_loader(data, folder)
            counts["cases"] += 1
            counts[outcome] += 1
            if outcome == "refused":
                verb = verbs[counts["cases"] % len(verbs)]
                result = run_cli(plan_argv(verb, folder / "plan.yaml", folder / "out"), folder)
                assert_no_crash(result)
                assert result.code == 2 and not result.processes, (verb, result.stderr[-500:])
                assert not (folder / "out").exists()
                counts["cli-refusals"] += 1

    try:
        case()
    except Exception as error:
        counts["crashes"] += 1
        print(f"FAILED: {type(error).__name__}: {str(error)[:3000]}", file=sys.stderr)
    report = {
        "seed": args.seed,
        "cases": counts["cases"],
        "accepted": counts["accepted"],
        "refused": counts["refused"],
        "refused_through_the_cli": counts["cli-refusals"],
        "tracebacks": counts["crashes"],
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report))
    return 1 if counts["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
