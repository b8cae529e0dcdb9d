#!/usr/bin/python3
"""A corpus in moe-data's layout for translation tests, and a model for it.

    toy_corpus.py DIR            writes DIR/languages.tsv and
                                 DIR/{train,valid,test}.{xa,xb}.tsv
    toy_corpus.py --config DIR OUT.json [capacity_factor]
                                 writes a small model configuration whose
                                 vocabulary is DIR/spm.vocab's size

Two made-up languages translate English word by word with fixed
dictionaries (xa keeps the word order, xb as well but with different words),
so a model learns them in a few hundred steps and the copy-the-source
baseline scores near zero. The word lists are deterministic.
"""
import json
import os
import random
import sys

ENGLISH = ("open close save file folder name new old print copy paste "
           "delete find replace show hide window menu help quit").split()
LANGUAGES = {
    "xa": "ufna klos sepa fyl fald nam nyu eld prin kopi past dilit fynd "
          "riplas sho hyd wind meny hulp kwit",
    "xb": "apro ferm salv dosi kart nomo nova vesa stam kopa incol cansi "
          "trov rimpa most cela fini elen aiut esci",
}


def write_corpus(directory):
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(7)
    counts = {}
    for language, words in LANGUAGES.items():
        table = dict(zip(ENGLISH, words.split()))
        splits = {"train": [], "valid": [], "test": []}
        seen = set()
        while sum(len(v) for v in splits.values()) < 3000:
            sentence = [rng.choice(ENGLISH) for _ in range(rng.randint(2, 5))]
            text = " ".join(sentence)
            if text in seen:
                continue
            seen.add(text)
            split = "test" if len(splits["test"]) < 100 else (
                "valid" if len(splits["valid"]) < 50 else "train")
            splits[split].append(
                text.capitalize() + "\t" +
                " ".join(table[w] for w in sentence).capitalize())
        for split, lines in splits.items():
            with open(os.path.join(directory, f"{split}.{language}.tsv"),
                      "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        counts[language] = {k: len(v) for k, v in splits.items()}
    with open(os.path.join(directory, "languages.tsv"), "w") as f:
        f.write("language\ttrain\tvalid\ttest\n")
        for language, n in counts.items():
            f.write(f"{language}\t{n['train']}\t{n['valid']}\t{n['test']}\n")


def write_config(directory, out, capacity_factor):
    with open(os.path.join(directory, "spm.vocab"), encoding="utf-8") as f:
        vocabulary = sum(1 for _ in f)
    config = {
        "name": "toy-mt", "vocab_size": vocabulary, "pad_id": 0,
        "d_model": 64, "num_heads": 4, "ffn_hidden": 128,
        "encoder_layers": 1, "decoder_layers": 2, "activation": "gelu",
        "position": "sinusoidal", "tie_embeddings": True, "dropout": 0.0,
        "label_smoothing": 0.0,
        "moe": {"num_experts": 4, "every": 2, "offset": 1, "top_k": 2,
                "capacity_factor": capacity_factor,
                "eval_capacity_factor": 2.0, "min_capacity": 4,
                "use_rts": False, "noise": "none", "groups": 1},
        "batch_size": 16, "src_len": 16, "tgt_len": 16,
    }
    with open(out, "w") as f:
        json.dump(config, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--config":
        write_config(sys.argv[2], sys.argv[3],
                     float(sys.argv[4]) if len(sys.argv) > 4 else 1.0)
    elif len(sys.argv) == 2:
        write_corpus(sys.argv[1])
    else:
        sys.exit(__doc__)
