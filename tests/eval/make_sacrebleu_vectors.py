#!/usr/bin/env python3
"""Writes tests/eval/sacrebleu_vectors.json: test corpora with the scores and
13a tokenizations that sacreBLEU itself computes (pip install sacrebleu).
moe-bleu / moert::eval must reproduce them (runtime/src/moert/eval/tests).

    python3 tests/eval/make_sacrebleu_vectors.py > tests/eval/sacrebleu_vectors.json
"""
import json
import sys

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

CASES = [
    ("simple", ["The cat sat on a mat.", "Hello world"],
     [["The cat sat on the mat.", "Hello, world!"]]),
    ("punctuation and numbers",
     ["It costs $1,000.50 - or 3-4 euros, doesn't it?",
      "See e.g. http://example.com/a_b?c=d&e=f (2024).",
      "Pages 10-20, 30--40; total: 5.5%"],
     [["It costs $1,000.50 -- or 3-4 euros, does it not?",
       "See e.g. http://example.com/a_b?c=d&e=f (2024)!",
       "pages 10-20 , 30-40 ; total : 5.5 %"]]),
    ("entities and skipped",
     ["Fish &amp; chips &lt;b&gt; &quot;tasty&quot; <skipped> now",
      "line-\nbreak and\ttabs\u00a0here"],
     [["Fish & chips <b> \"tasty\" now", "linebreak and tabs here"]]),
    ("unicode", ["Größe: 5 µm — “Zitat”, ¿qué?", "日本語 の テキスト。",
                 "Ça va bien, merci !"],
     [["Größe : 5 µm - \"Zitat\", ¿qué ?", "日本語のテキスト。",
       "Ça va très bien, merci!"]]),
    ("empty hypotheses", ["", "a b c", ""],
     [["x y z", "a b c", ""]]),
    ("all empty hypotheses", ["", ""], [["one two", "three"]]),
    ("no match", ["foo bar baz"], [["completely different words"]]),
    ("short hypothesis", ["the"], [["the cat is on the mat"]]),
    ("longer hypothesis", ["the cat is on the mat on the mat today"],
     [["the cat is on the mat"]]),
    ("two references",
     ["the cat is on the mat", "there is a cat on the mat"],
     [["the cat is on the mat", "a cat is on the mat"],
      ["there is a cat on the mat", "the cat sits on the mat"]]),
    ("trailing whitespace", ["a b c   ", " d e"], [["a b c", "d e  "]]),
]


def main():
    tokenizer = Tokenizer13a()
    vectors = []
    for name, hyps, refs in CASES:
        bleu = BLEU().corpus_score(hyps, refs)
        chrf = CHRF().corpus_score(hyps, refs)
        vectors.append({
            "name": name,
            "hypotheses": hyps,
            "references": refs,
            "bleu": bleu.score,
            "bleu_counts": list(bleu.counts),
            "bleu_totals": list(bleu.totals),
            "bleu_sys_len": bleu.sys_len,
            "bleu_ref_len": bleu.ref_len,
            "bleu_text": str(bleu).split(" = ", 1)[1],
            "chrf": chrf.score,
            "tokenized": [tokenizer(h.rstrip()) for h in hyps],
        })
    json.dump({"sacrebleu": sacrebleu.__version__, "vectors": vectors},
              sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
