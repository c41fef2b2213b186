#!/usr/bin/env python3
"""The p95 steal of a twin family if every VM of an AZ shared its overload.

A VM cannot leave its AZ, so whenever an AZ's demand exceeds its cores some
VM loses CPU. This script recomputes, from `steward simulate -f json` alone,
the fluid p95 steal when every VM of an AZ suffers the AZ's overload equally
(`1 - cores / demand`), and its ratio to the better Nova baseline's p95, per
seed: the reference the README sets steward's figures against. It is not a
strict bound on p95 (a placement that piles the overload onto a few VMs can
show a lower p95 and the same unserved CPU).

  scripts/simulate-equal-share.py etc/scenarios/diurnal.toml 1..10
  STEWARD_BIN=target/release/steward scripts/simulate-equal-share.py ...
"""

import json
import math
import os
import statistics
import subprocess
import sys


def equal_share_p95(report):
    cores = {}
    for h in report["hosts"]:
        cores[h["az"]] = cores.get(h["az"], 0.0) + h["pcpus"]
    vms = report["vms"]
    samples = []
    for k, row in enumerate(report["vm_demand"]):
        live = [i for i, v in enumerate(vms) if k >= v["boot_step"]]
        demand = {}
        for i in live:
            az = vms[i]["az"]
            demand[az] = demand.get(az, 0.0) + row[i]
        for i in live:
            az = vms[i]["az"]
            d = demand[az]
            samples.append(max(0.0, 1.0 - cores[az] / d) if d else 0.0)
    samples.sort()
    return samples[math.ceil(0.95 * len(samples)) - 1]


def spread(values):
    return "%.1f / %.1f / %.1f" % (
        min(values),
        statistics.median(values),
        max(values),
    )


def main():
    scenario, seeds = sys.argv[1], sys.argv[2]
    first, last = (int(s) for s in seeds.split(".."))
    binary = os.environ.get("STEWARD_BIN", "target/release/steward")
    shares, ratios = [], []
    for seed in range(first, last + 1):
        out = subprocess.run(
            [binary, "simulate", "--scenario", scenario,
             "--seed", str(seed), "-f", "json"],
            check=True, capture_output=True, text=True,
        ).stdout
        report = json.loads(out)
        p95 = {s["strategy"]: s["steal_p95"] for s in report["strategies"]}
        best = min(p95["nova-default"], p95["nova-groups"])
        share = equal_share_p95(report)
        shares.append(100 * share)
        ratios.append(100 * share / best if best else float("nan"))
    print("%s: equal-share p95 steal %s %%, / better Nova %s %%" % (
        scenario, spread(shares), spread(ratios)))


if __name__ == "__main__":
    main()
