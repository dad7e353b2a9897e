"""``bayesnu run CARD``: run a YAML model card end to end."""

from __future__ import annotations

import argparse

from bayesnu.cli import emit_json


def _run(args: argparse.Namespace) -> int:
    from bayesnu.config import run_card

    result = run_card(args.card, args.out)
    if args.json:
        emit_json(result)
        return 0
    print(f"model card {args.card}: done in {result.get('wall_s', float('nan')):.1f} s")
    print(f"  outputs in {result['output']}")
    fit = result.get("fit")
    if isinstance(fit, dict) and "ts" in fit:
        print(f"  ML fit: TS = {fit['ts']:.3f}, ns = {fit['ns']:.2f}, gamma = {fit['gamma']:.2f}")
    post = result.get("posterior", {})
    for name, s in post.get("params", {}).items():
        print(f"  {name:<10} mean {s['mean']:.4g}  sd {s['sd']:.3g}  [{s['q05']:.4g}, {s['q95']:.4g}]  "
              f"r_hat {s['r_hat']:.3f}")  # fmt: skip
    if "divergences" in post:
        print(f"  divergences: {post['divergences']}")
    return 0


def register(verbs: dict) -> None:
    """Fill in the ``run`` verb."""
    p = verbs["run"]
    p.add_argument("card", help="YAML model card, e.g. models/point_source_demo.yaml")
    p.add_argument("--out", default=None, help="output folder (default: the card's output.dir)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)
