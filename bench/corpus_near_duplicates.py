"""A stricter near-duplicate check of the packaged corpus than the build's own.

The build drops exact duplicates and stories with the same first 15 words. This asks
whether any two stories share much of their text anywhere: MinHash LSH (128
permutations) over word 5-gram shingles, then the exact Jaccard similarity of every
candidate pair.

Usage: pip install datasketch; python bench/corpus_near_duplicates.py [--threshold 0.3 0.5]
Prints, per threshold, how many stories have an earlier story at least that similar,
and the highest similarity among the candidate pairs.
"""

from __future__ import annotations

import argparse
import sys
import time

from story_env.agents.corpus import load_corpus


def shingles(story: str, n: int = 5) -> set[str]:
    words = story.lower().split()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threshold", type=float, nargs="+", default=[0.3, 0.5])
    args = parser.parse_args()
    try:
        from datasketch import MinHash, MinHashLSH
    except ImportError:
        print("skipped: this check needs `pip install datasketch` (not a project dependency)")
        return 0
    stories = load_corpus("train") + load_corpus("validation")
    started = time.perf_counter()
    sets = [shingles(s) for s in stories]
    hashes = []
    for shingle_set in sets:
        h = MinHash(num_perm=128, seed=1)
        h.update_batch([s.encode() for s in shingle_set])
        hashes.append(h)
    for threshold in args.threshold:
        lsh = MinHashLSH(threshold=threshold, num_perm=128)
        for i, h in enumerate(hashes):
            lsh.insert(i, h)
        flagged, highest = set(), 0.0
        for i, h in enumerate(hashes):
            for j in lsh.query(h):
                if j != i:
                    jaccard = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
                    highest = max(highest, jaccard)
                    if jaccard >= threshold:
                        flagged.add(max(i, j))
        print(
            f"Jaccard >= {threshold} over word 5-grams: {len(flagged)} of {len(stories):,} "
            f"stories ({100 * len(flagged) / len(stories):.2f}%) have an earlier such story; "
            f"highest candidate pair {highest:.2f}"
        )
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
