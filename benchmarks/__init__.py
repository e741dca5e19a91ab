"""lyricgen's benchmarks: held-out quality, speed and memory on this machine, in one run.

    python -m benchmarks                       # everything (about 25 minutes on a 2-core CPU)
    python -m benchmarks --quick               # a few minutes: shorter budgets, smaller scales
    python -m benchmarks --sections quality,generation --corpus PATH --json PATH

One module per section; each returns its figures, with their targets where the project has one:

    quality      the held-out protocol: train on the first 90% of the corpus's lines, score the
                 untouched last 10% with `lyricgen evaluate --json` (bpc-open, token perplexity),
                 for time budgets of 60 s and 300 s, defaults and the tutorial-size model
    throughput   training tokens/s (the trainer's own figure in metrics.csv) and GFLOP/s against the
                 machine's fp32 matmul peak, default and tutorial-size models
    tokenizing   tokenising and building the vocabulary at x1 and x20 the corpus (time, memory,
                 linearity), the token cache, Vocab.build's scaling, one 2 MB line
    generation   greedy ms/token, 64 sampled candidates x 100 tokens, and a whole `lyricgen generate`
                 process against `python -c "import torch"`
    memory       resident memory while training on x20 the corpus: at the start, in the first epoch,
                 after it (growth should be ~0)
    serving      `lyricgen serve` under 1, 4 and 16 concurrent clients on 127.0.0.1: requests/s,
                 p50/p95 latency, refusals (503), no other 5xx, memory over 1,000 requests, and a
                 screenshot of the page (serving-page.png beside the JSON)
    distributed  training tokens/s of one process against two gloo processes under torchrun, on the
                 bundled sample corpus and, when present, 全宋词

Figures come from the library and from the command line's --json and metrics.csv, never from its
human-readable output. They are printed as a table and written as JSON (default
bench-results/bench.json). Speed figures depend on what else runs on the machine: the load average
at start and end is recorded. The default corpus is data/jaychou_lyrics.txt (`lyricgen download
jaychou`), else ../shared/data/jaychou_lyrics.txt; without one the sections that need it are skipped.
"""
