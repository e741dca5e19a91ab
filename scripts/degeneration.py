"""How often generation loops: over N start words from the vocabulary, count the outputs that
repeat the same line 3 times in a row (and, stricter, the outputs in which any phrase of 2 to 24
characters occurs 3 times in a row, which also catches a loop inside one endless line), for greedy
decoding and for the recommended sampling.

    python scripts/degeneration.py --checkpoint checkpoints/best.pt [--words 50] [--json out.json]

Start words are the most frequent vocabulary entries that are words or characters (no spaces or
line breaks). Sampling is seeded (seed = index of the word), so the figures are reproducible.
"""
import argparse
import json
import sys

from lyricgen.config import SAMPLE_PRESET as RECOMMENDED
from lyricgen.writing.lyricist import Lyricist
from lyricgen.writing.loops import repeats_a_line, repeats_a_phrase


def count_loops(writer: Lyricist, words: list[str], options: dict, max_tokens: int) -> dict:
    lines, phrases = [], []
    for k, word in enumerate(words):
        extra = {"seed": k} if options.get("temperature", 0) > 0 else {}
        text = writer.generate(word, max_tokens=max_tokens, **options, **extra)[0].text
        if repeats_a_line(text):
            lines.append(word)
        if repeats_a_phrase(text):
            phrases.append(word)
    return {"line_loops": len(lines), "phrase_loops": len(phrases), "of": len(words), "options": options,
            "line_looped_words": lines, "phrase_looped_words": phrases}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/best.pt", help="model checkpoint")
    p.add_argument("--words", type=int, default=50, help="how many start words (default: 50)")
    p.add_argument("--max-tokens", type=int, default=100, help="tokens per output (default: 100)")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    writer = Lyricist.load(args.checkpoint)
    words = [w for w in writer.vocab.most_frequent(10 * args.words) if w.strip() == w][: args.words]
    results = {}
    for name, options in (("greedy", {}), ("recommended", RECOMMENDED)):
        r = results[name] = count_loops(writer, words, options, args.max_tokens)
        print(f"{name:12s} {r['line_loops']:3d} of {r['of']} outputs repeat a line 3 times in a row; "
              f"{r['phrase_loops']:3d} repeat a phrase 3 times in a row  {options or ''}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, ensure_ascii=False, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
