"""`python -m benchmarks`: run the sections, print one table, write the figures as JSON."""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from . import distributed, generation, memory, quality, serving, songs, throughput, tokenizing
from .common import ROOT, Context, default_corpus, format_table

SECTIONS = {"quality": quality, "throughput": throughput, "tokenizing": tokenizing, "generation": generation,
            "memory": memory, "serving": serving, "distributed": distributed, "songs": songs}
DEFAULT_JSON = ROOT / "bench-results" / "bench.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a few minutes: shorter budgets, smaller scales")
    p.add_argument("--corpus", type=Path, default=default_corpus(), help="lyrics corpus (default: %(default)s)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the figures (default: %(default)s)")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of %(default)s")
    p.add_argument("--checkpoint", type=Path, help="a trained model for the generation and serving sections "
                                                   "(default: the quality section's)")
    p.add_argument("--base", type=Path, help="a base model for the quality section's fine-tune row (default: the "
                                             "section trains one on 全宋词 and data/open_lyrics.txt)")
    p.add_argument("--base-budget", type=float, help="seconds of training for the base the quality section trains "
                                                     "when no --base is given (default: 1800, 20 with --quick)")
    p.add_argument("--keep-runs", type=Path, help="a folder to keep the quality section's runs in, to generate "
                                                  "from them (default: a temporary folder, removed)")
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    if args.base is not None and not args.base.is_file():
        p.error(f"--base: no checkpoint at {args.base}")
    if args.base_budget is not None and args.base_budget <= 0:
        p.error(f"--base-budget must be positive, got {args.base_budget:g}")
    return args


def machine_info(args) -> dict:
    import torch

    return {"quick": args.quick, "corpus": str(args.corpus), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_start": os.getloadavg()}


def main(argv=None) -> int:
    args = parse_args(argv)
    info = machine_info(args)
    if not args.corpus.is_file():
        print(f"[bench] corpus not found at {args.corpus}: every section needs it; get it with "
              "`lyricgen download jaychou` (skipped)", file=sys.stderr)
        return 0
    figures, details, errors = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="lyricgen-bench-") as tmp:
        ctx = Context(corpus=args.corpus, tmp=Path(tmp), quick=args.quick, checkpoint=args.checkpoint,
                      out=args.json.parent, base=args.base and args.base.resolve(), base_budget=args.base_budget,
                      keep_runs=args.keep_runs and args.keep_runs.resolve())
        for name in args.sections:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                section = SECTIONS[name].run(ctx)
            except Exception as e:  # one failed section must not lose the others' figures
                errors[name] = f"{type(e).__name__}: {e}"
                print(f"[bench] {name} FAILED: {errors[name]}", file=sys.stderr, flush=True)
                continue
            figures += section.figures
            details[name] = section.details
            print(f"[bench] {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    info["loadavg_end"] = os.getloadavg()
    load = [" ".join(f"{x:.1f}" for x in info[k]) for k in ("loadavg_start", "loadavg_end")]
    print(f"lyricgen benchmarks ({'quick' if args.quick else 'full'}): {info['cpus']} CPUs, torch {info['torch']} "
          f"with {info['torch_threads']} threads; load average {load[0]} at start, {load[1]} at end")
    print(format_table(figures))
    report = {"info": info, "errors": errors, "figures": [f.to_dict() for f in figures], "details": details}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"[bench] wrote {args.json}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
