#!/usr/bin/env python3
"""Writes the seed inputs of the tokenizer fuzzer (fuzz/corpus/tokenizer/).

The toy corpus of tests/lit/Eval/Inputs/toy_corpus.py (English and two
made-up languages) is written to a scratch directory and encoded by
`moe-data encode` with the committed model fuzz/tokenizer/spm.model; its
smallest id shards and split files become seeds, with a few texts the
corpus lacks (non-ASCII and NFKC-normalized characters, the tag pieces,
invalid UTF-8, NUL bytes, a run of characters outside the vocabulary, a
long line) and an id shard of no pairs.

With --train the model is first trained anew (`moe-data spm --vocab 200`,
as the moe-eval test does) and replaces fuzz/tokenizer/spm.{model,vocab};
SentencePiece's trainer is not deterministic, so the model and the shards
change together.

Usage: fuzz/make_tokenizer_seeds.py [--train] [MOE_DATA]
       (MOE_DATA: the moe-data binary, default build-runtime/bin/moe-data)
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL_DIR = os.path.join(HERE, "tokenizer")
SEED_DIR = os.path.join(HERE, "corpus", "tokenizer")
TOY_CORPUS = os.path.join(ROOT, "tests", "lit", "Eval", "Inputs",
                          "toy_corpus.py")

# Copied from the encoded toy corpus: real shards and split files.
CORPUS_SEEDS = ["test.xa.ids", "valid.xb.ids", "test.xa.tsv", "valid.xb.tsv"]

TEXTS = {
    "text-multilingual.txt":
        "Datei \u00f6ffnen \u2014 Ouvrir le fichier \u00e0 c\u00f4t\u00e9; "
        "\u30d5\u30a1\u30a4\u30eb\u3092\u958b\u304f \U0001f4c2\n"
        "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \u2460 "
        "\ufb01le e\u0301t\u00e9 \u00a0no-break\u2003space\n".encode("utf-8"),
    "text-tags.txt":
        b"<2xa> open file <mask> <dae> close <mt> <2en>quit<2xb></s><s><pad>\n",
    "text-invalid-utf8.bin":
        b"Open \xff\xfe file \xc3\x28 \xe2\x82 \xed\xa0\x80 \xc0\xaf \xf8\x88"
        b"\x80\x80\x80 \xf4\x90\x80\x80 save\n",
    "text-nul.bin": b"Open\x00file\tFyl\x00nam\n\x00\x00\x00\n",
    # A run of characters outside the model's vocabulary: the encoder's
    # time grows with the square of its length (Tokenizer.h, kMaxTextBytes).
    "text-unknown-run.bin": b"Open " + b"x" * 3000 + b"\0" * 1000 + b" file\n",
    "text-long-line.txt":
        (" ".join(["Open file close window save print help quit"] * 180)
         + "\tUfna fyl klos wind sepa prin hulp kwit\n").encode("utf-8"),
}


def main(argv):
    train = "--train" in argv
    rest = [a for a in argv if a != "--train"]
    moe_data = rest[0] if rest else os.path.join(ROOT, "build-runtime", "bin",
                                                 "moe-data")
    with tempfile.TemporaryDirectory() as scratch:
        corpus = os.path.join(scratch, "corpus")
        subprocess.run([sys.executable, TOY_CORPUS, corpus], check=True)
        if train:
            subprocess.run([moe_data, "spm", corpus, "--vocab", "200"],
                           check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            os.makedirs(MODEL_DIR, exist_ok=True)
            for name in ("spm.model", "spm.vocab"):
                shutil.copy(os.path.join(corpus, name), MODEL_DIR)
        else:
            shutil.copy(os.path.join(MODEL_DIR, "spm.model"), corpus)
        subprocess.run([moe_data, "encode", corpus], check=True,
                       stdout=subprocess.DEVNULL)
        os.makedirs(SEED_DIR, exist_ok=True)
        for name in CORPUS_SEEDS:
            shutil.copy(os.path.join(corpus, name), SEED_DIR)
    # An encoded split without pairs: the magic and a count of zero.
    with open(os.path.join(SEED_DIR, "empty.ids"), "wb") as f:
        f.write(b"MOEIDS1\0" + struct.pack("<Q", 0))
    for name, data in TEXTS.items():
        with open(os.path.join(SEED_DIR, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1:])
