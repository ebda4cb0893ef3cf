"""Is one model folder's step graph faster than another's? An interleaved A/B on one machine.

``python benchmarks/step_ab.py OLD_MODEL NEW_MODEL`` times the step call
(``rtsep.bench.StepCall``: one hop as the engine runs it) of both, on each provider that runs
here, in alternating rounds, so that a slow spell of the machine falls on both alike.
"""

from __future__ import annotations

import argparse

from rtsep import bench, contract
from rtsep.model import load_model, providers_here

ROUNDS = 6
CALLS = 800
WARM_UP_CALLS = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs=2, help="two model folders")
    args = parser.parse_args()
    calls = {
        (path, provider): bench.StepCall(load_model(path, provider=provider))
        for path in args.models
        for provider in providers_here()
    }
    times: dict[tuple[str, str], list[int]] = {key: [] for key in calls}
    for _ in range(ROUNDS):
        for key, call in calls.items():
            bench.time_calls(call, calls=WARM_UP_CALLS)
            times[key].extend(bench.time_calls(call, calls=CALLS).wall_ns)
    for (path, provider), wall_ns in times.items():
        row = bench.summarize(wall_ns, contract.HOP)
        print(
            f"{path} {provider:4s}: p50 {row['p50_us']:6.1f}  mean {row['mean_us']:6.1f}  "
            f"p99 {row['p99_us']:6.1f} µs ({row['calls']} calls)"
        )


if __name__ == "__main__":
    main()
