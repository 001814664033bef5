"""The composer alone on shapes world: programs for detailed prompts against the ground-truth programs.

    python experiments/composer_alone.py [--n 300] [--relations 100] [--counts 60] [--model omost-tiny]
                                   [--seed 4242] [--llm-option K=V ...]
    python experiments/composer_alone.py --smoke      (one prompt of each kind: seconds, for the tests)

Each prompt says every object's colour, place and size, so the scene's own program is the right answer
(offsets and depths aside). Prints the parse rate (first answer, and after the one retry with the error
fed back) and, per ground-truth object, the fractions with a region of its shape and colour, with its
location word, with its area word, and with all of them (exact).

Then `--relations` prompts in the suite's position phrasing ("a photo of a circle above a star"), which
fix no single program: the share whose two regions' boxes hold the asked relation (GenEval's rule on
Omost's grid), overall and per relation.

Then `--counts` prompts in the suite's counting phrasing ("a photo of three stars"): the share whose
program has exactly that many regions, all of that shape, overall and per count (2, 3, 4).

`--suite FILE` (repeatable) scores the programs for a suite file's prompts, in whatever phrasing, against
each line's requirements (shapes, colours, counts, relations), per task: how well the composer reads
prompts such as the development set's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

import t2i
from t2i.backends import default_registry
from t2i.evaluation.composer import composer_alone, count_following, relation_following, suite_following
from t2i.stages import open_composer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--model", default="omost-tiny")
    ap.add_argument("--llm-option", action="append", default=[], metavar="K=V")
    ap.add_argument("--relations", type=int, default=100, help="position prompts to score (0: none)")
    ap.add_argument("--counts", type=int, default=60, help="counting prompts to score (0: none)")
    ap.add_argument("--suite", action="append", default=[], metavar="FILE",
                    help="a suite file whose prompts to score against their lines' requirements (repeatable)")
    ap.add_argument("--show-failures", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="the tiniest run: one prompt of each kind")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.relations, args.counts = 1, 1, 1
        args.suite = args.suite or [str(Path(t2i.__file__).parent / "world" / "data" / "dev_prompts.jsonl")]
    options = dict(kv.split("=", 1) for kv in args.llm_option)
    composer = open_composer(args.model, default_registry(), options)

    def compose(prompt: str, seed: int):
        c = composer.compose(prompt, seed=seed)
        return c.canvas, c.retried

    bar = tqdm(total=args.n, desc="compose", file=sys.stderr)
    t0 = time.perf_counter()
    scores = composer_alone(compose, args.n, args.seed, lambda i: bar.update(1))
    bar.close()
    rates = scores.rates()
    print(f"{args.n} detailed prompts ({scores.objects} objects), composer {args.model}, seed {args.seed}, "
          f"{(time.perf_counter() - t0) / max(args.n, 1):.2f} s/program")
    print(json.dumps({k: round(v, 3) for k, v in rates.items()}, indent=1))
    for failure in scores.failures[:args.show_failures]:
        print("parse failure:", failure)
    if args.relations > 0:
        bar = tqdm(total=args.relations, desc="relations", file=sys.stderr)
        relations = relation_following(compose, args.relations, args.seed, lambda i: bar.update(1))
        bar.close()
        print(f"{args.relations} position prompts ('a photo of a circle above a star'), composer {args.model}, "
              f"seed {args.seed}")
        print(json.dumps({k: round(v, 3) for k, v in relations.rates().items()}, indent=1))
    if args.counts > 0:
        bar = tqdm(total=args.counts, desc="counts", file=sys.stderr)
        counts = count_following(compose, args.counts, args.seed, lambda i: bar.update(1))
        bar.close()
        print(f"{args.counts} counting prompts ('a photo of three stars'), composer {args.model}, seed {args.seed}")
        print(json.dumps({k: round(v, 3) for k, v in counts.rates().items()}, indent=1))
    for path in args.suite:
        from t2i.world.suite import read_suite

        lines = read_suite(path)[:1] if args.smoke else read_suite(path)
        tally = suite_following(compose, lines, args.seed)
        print(f"{len(lines)} prompts of {path}, composer {args.model}, seed {args.seed}: programs meeting the line")
        print(json.dumps({tag: f"{right}/{n} = {right / n:.3f}" for tag, (right, n) in sorted(tally.items())},
                         indent=1))


if __name__ == "__main__":
    main()
