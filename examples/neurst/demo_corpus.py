"""The NeurST demo's English->German parallel corpus, built offline.

    python examples/neurst/demo_corpus.py OUT_DIR [--fallback]

Source: the gettext catalogs of this machine, /usr/share/locale/de/LC_MESSAGES/
*.mo (msgid = English, msgstr = German), read with a small .mo parser of our
own (GNUTranslations rejects whole catalogs over one badly encoded entry).
Plural entries give their singular forms, "context\\x04" prefixes are dropped,
and so is the header entry (empty msgid). Where fewer than `min_pairs` clean
pairs come out (a container without locales), a generated toy corpus takes
their place: `fallback_corpus`, English phrases -> German with agreement, verb
second order and "einundzwanzig"-style numbers, learnable in minutes.

Cleaning, per pair, in this order:
  - markup: tags of HTML/Pango (<b>, <span ...>, <a href=...>, <br/>) are
    removed; other <...> are kept, as CLI catalogs use them for arguments
    ("<commit>" -> "<Commit>"), which are content; then character entities
    (&amp;, &#233;) are unescaped;
  - keyboard accelerators: "_File", "&Open", "O_pen", "Datei (_F)". A marker
    is only removed from a word absent from the other side, so identifiers
    ("work_mem", "R&D"), which translations copy verbatim, stay intact;
  - control characters become spaces, invisible format characters (soft
    hyphen, zero width joiners) are deleted, whitespace and newlines are
    collapsed.
Then a pair is dropped when either side is empty; when the sides are equal up
to case (untranslated: names, codes); when either side has less than half
letters among its non-space characters, placeholders not counted; when the
multisets of format placeholders (%s, %-5d, %1$s, %(name)s, %1, {0}, {name})
differ; when either side has more than `max_len` tokens (words and
punctuation marks, about what Moses makes of it) or the token counts differ
by more than a factor of `max_ratio`. Duplicates are dropped by source,
compared case-insensitively and without trailing punctuation, so that
"Open file..." and "Open File:" cannot end up one in train and one in dev; the
first one in catalog-name order wins. Last, the pairs kept go through Moses's
punctuation normalisation (sacremoses, as NeurST's pipeline does before
tokenising), so the references' quotes (»...«, „...“) and dashes are the ones
the model learns to produce ("…" becomes "..."); after the checks, as it
mangles placeholders ("%(name)s" becomes "% (name) s", in NeurST's input
too). Trailing ellipses and colons are otherwise left alone: the catalogs
translate them consistently, and they are part of the references.

Dev split: the pairs are ordered by the SHA-1 of (seed, source); the first
`dev_size` form the dev set, the rest the training set. The order is
independent of the catalogs' order, and it shuffles the training file, which
NeurST reads sequentially into a bounded shuffle buffer.

Tokenisation, matching NeurST's TextDataPipeline(tokenizer="moses",
subtokenizer="bpe"): Moses (sacremoses, as NeurST calls it), then BPE with
codes learned by subword-nmt (its learn_bpe, "#version: 0.2" codes: the
format NeurST's BPE applies; NeurST's BPE is a port of subword-nmt's
apply_bpe, which encodes the training files here). tests/neurst check the
training files against NeurST's own pipeline. Learning takes 7 s on this
machine's catalogs (34k words, 6000 merges), 4 s more than the heap-based
learner this module had, which is nothing next to the demo's minutes, so
subword-nmt it is. BPE over
words rather than a word vocabulary with <UNK>s (dev sentences are full of
words seen once) or characters (sequences four times longer, for a model
trained a few minutes). 6000 merges: the cost of the softmax over a larger
vocabulary about cancels the shorter sequences, and small data favours small
vocabularies. One joint BPE and one joint vocabulary for both languages: NeurST's
BPE memoises segmentations in a cache shared by all its instances, so a word
on both sides must segment the same way, which separate vocabularies (used
by BPE to undo merges into unseen subwords) would not guarantee.

Output files, in `out_dir`:
    train.en, train.de, dev.en, dev.de   clean text, one sentence per line
    train.tok.bpe.en, train.tok.bpe.de   train.* as NeurST's pipeline encodes
                                         it (data_is_processed: true)
    codes.bpe                            joint BPE merges ("#version: 0.2")
    vocab.txt                            joint vocabulary, "token count" lines
Dev files stay raw (data_is_processed: false): NeurST tokenises the sources
itself, and its SequenceGenerator detokenises the hypotheses (BPE, then Moses)
and scores them against the raw dev.de lines (its `targets`; BLEU tokenises
both sides the same way), so the BLEU is the usual detokenised one.
"""
import argparse
import collections
import contextlib
import functools
import glob
import hashlib
import html
import io
import json
import os
import random
import re
import struct
import sys

from sacremoses import MosesPunctNormalizer, MosesTokenizer
from subword_nmt.apply_bpe import BPE
from subword_nmt.learn_bpe import learn_bpe as _subword_nmt_learn_bpe

SRC_LANG = "en"
BPE_SEPARATOR = "@@"  # NeurST's BPE default

# .mo catalogs ------------------------------------------------------------

_MO_MAGIC = 0x950412de
_CHARSET = re.compile(r"charset=\s*([-\w.:]+)", re.IGNORECASE)


def read_mo(path):
    """Returns the (msgid, msgstr) pairs of a .mo file: singular forms,
    without message contexts and without the header. Entries that do not
    decode with the catalog's charset are skipped."""
    with open(path, "rb") as f:
        data = f.read()
    for order in "<>":
        magic, revision, count, ids_at, strs_at = struct.unpack_from(order + "5I", data)
        if magic == _MO_MAGIC:
            break
    else:
        raise ValueError("%s: not a .mo file" % path)
    if revision >> 16 > 1:
        raise ValueError("%s: unsupported .mo revision %d" % (path, revision >> 16))

    def string(table, i):
        length, offset = struct.unpack_from(order + "2I", data, table + 8 * i)
        return data[offset:offset + length]

    entries = [(string(ids_at, i), string(strs_at, i)) for i in range(count)]
    charset = "utf-8"
    for msgid, msgstr in entries:
        if not msgid:
            found = _CHARSET.search(msgstr.decode("ascii", "replace"))
            if found and found.group(1).upper() != "CHARSET":  # an unfilled template
                charset = found.group(1)
    pairs = []
    for msgid, msgstr in entries:
        msgid = msgid.split(b"\x04", 1)[-1]  # "context\x04msgid"
        if not msgid:
            continue  # the header
        try:
            pairs.append((msgid.split(b"\x00")[0].decode(charset),
                          msgstr.split(b"\x00")[0].decode(charset)))
        except (UnicodeDecodeError, LookupError):
            continue
    return pairs


def catalog_pairs(locale_root="/usr/share/locale", lang="de"):
    """All (English, translation) pairs of `lang`'s catalogs, catalogs in
    file-name order. Returns (pairs, catalog paths)."""
    paths = sorted(glob.glob(os.path.join(locale_root, lang, "LC_MESSAGES", "*.mo")))
    pairs = []
    for path in paths:
        try:
            pairs.extend(read_mo(path))
        except (ValueError, struct.error):
            continue  # a damaged catalog costs its pairs, not the corpus
    return pairs, paths


# Cleaning ------------------------------------------------------------------

_MARKUP_TAGS = ("a|b|big|br|code|em|font|i|kbd|markup|p|s|small|span|strike|strong|sub|sup"
                "|tt|u|var")
_TAG = re.compile(r"</?(?:%s)(?:\s[^<>]*)?/?>" % _MARKUP_TAGS, re.IGNORECASE)
_PAREN_ACCELERATOR = re.compile(r"\s*\([_&][^\W_]\)")
_ENTITY = re.compile(r"&(?:[A-Za-z]+|#\d+|#[xX][0-9A-Fa-f]+);")
# A single "_" or "&" before a letter or digit ("__" and "&&" are escaped
# literals).
_ACCELERATOR = re.compile(r"(?<![_&])[_&](?=[^\W_])")
_WORD = re.compile(r"[\w&]+")
_PLACEHOLDER = re.compile(
    r"%(?:\d+\$)?(?:\([^()\s]+\))?[-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?"
    r"(?:hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGaAcspnm%]"
    r"|%\d+|\{\w*\}")
_TOKEN = re.compile(r"\w+|[^\w\s]")  # about Moses's tokens: words and punctuation marks
_TRAILING_PUNCT = re.compile(r"[\s.:!?\u2026]+$")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Invisible format characters: soft hyphen, zero widths, bidi marks, BOM.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


@functools.lru_cache(maxsize=None)
def _normalizer(lang):
    return MosesPunctNormalizer(lang=lang)


@functools.lru_cache(maxsize=None)
def _tokenizer(lang):
    return MosesTokenizer(lang=lang)


def _normalize(text, lang):
    return " ".join(_normalizer(lang).normalize(text).split())


def _without_markup(text):
    # Entities after tags: an escaped "&lt;b&gt;" is text, not a tag.
    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), _TAG.sub(" ", text))


def _strip_accelerators(text, other):
    def word(match):
        w = match.group(0)
        if w in keep or len(_ACCELERATOR.findall(w)) != 1:
            return w  # copied verbatim by the translation, or an identifier
        return _ACCELERATOR.sub("", w)

    keep = set(_WORD.findall(other))
    return _WORD.sub(word, _PAREN_ACCELERATOR.sub("", text))


def _plain(src, trg):
    """The pair without markup, accelerators and control characters, with
    whitespace collapsed."""
    src, trg = _without_markup(src), _without_markup(trg)
    src, trg = _strip_accelerators(src, trg), _strip_accelerators(trg, src)
    return tuple(" ".join(_INVISIBLE.sub("", _CONTROL.sub(" ", s)).split()) for s in (src, trg))


def reject_reason(src, trg, max_len=30, max_ratio=3.0):
    """Why a cleaned pair is dropped (a short name), or None to keep it."""
    if not src or not trg:
        return "empty"
    if src.casefold() == trg.casefold():
        return "untranslated"
    for side in (src, trg):
        rest = _PLACEHOLDER.sub("", side).replace(" ", "")
        if not rest or 2 * sum(c.isalpha() for c in rest) < len(rest):
            return "non_letters"
    if sorted(_PLACEHOLDER.findall(src)) != sorted(_PLACEHOLDER.findall(trg)):
        return "placeholders"
    ls, lt = len(_TOKEN.findall(src)), len(_TOKEN.findall(trg))
    if max(ls, lt) > max_len:
        return "too_long"
    if max(ls, lt) > max_ratio * min(ls, lt):
        return "length_ratio"
    return None


def clean_pairs(pairs, trg_lang="de", max_len=30, max_ratio=3.0):
    """Cleans, filters and deduplicates `pairs` (see the module docstring).
    Returns (kept pairs in input order, {reason: dropped count})."""
    kept, dropped, seen = [], collections.Counter(), set()
    for src, trg in pairs:
        src, trg = _plain(src, trg)
        reason = reject_reason(src, trg, max_len, max_ratio)
        if reason is None:
            src, trg = _normalize(src, SRC_LANG), _normalize(trg, trg_lang)
            key = _TRAILING_PUNCT.sub("", src).casefold()
            reason = "duplicate" if key in seen else None
        if reason:
            dropped[reason] += 1
            continue
        seen.add(key)
        kept.append((src, trg))
    return kept, dict(sorted(dropped.items()))


def split_dev(pairs, dev_size=500, seed=0):
    """(train, dev): pairs in the order of SHA-1(seed, source), the first
    `dev_size` of them for dev."""
    ordered = sorted(pairs, key=lambda p: hashlib.sha1(
        ("%d\t%s" % (seed, p[0])).encode("utf-8")).digest())
    return ordered[dev_size:], ordered[:dev_size]


# Tokenisation and BPE -----------------------------------------------------


def moses_tokenize(text, lang):
    """What NeurST's TextDataPipeline(tokenizer="moses") makes of `text`
    before BPE: its pre-normalisation, then Moses with aggressive dash splits
    and no escaping (neurst/data/data_pipelines/data_pipeline.py,
    neurst/data/text/moses_tokenizer.py)."""
    text = _normalizer(lang).normalize(text)
    for suffix in ("s", "ve", "m", "t", "re"):
        text = text.replace("' %s " % suffix, "'%s " % suffix)
    return _tokenizer(lang).tokenize(" ".join(text.split()), aggressive_dash_splits=True,
                                      return_str=True, escape=False)


def learn_bpe(word_counts, num_merges, min_frequency=2):
    """subword-nmt's BPE codes for the word frequencies {word: count}: the
    "#version: 0.2" line, then at most `num_merges` merges (one pair a
    line), each of a pair seen at least `min_frequency` times."""
    words = io.StringIO("".join("%s %d\n" % wc for wc in sorted(word_counts.items())))
    codes = io.StringIO()
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
        _subword_nmt_learn_bpe(words, codes, num_merges, min_frequency=min_frequency,
                               is_dict=True)
    return codes.getvalue()


class BPEEncoder:
    """subword-nmt's BPE over `codes` (learn_bpe's text): Moses-tokenised
    lines -> subwords, "@@" ending every piece but a word's last (NeurST's
    separator), single spaces between tokens."""

    def __init__(self, codes):
        self._bpe = BPE(io.StringIO(codes), separator=BPE_SEPARATOR)

    def line(self, tokenized):
        return " ".join(self._bpe.segment_tokens(tokenized.split()))


# Corpus files ---------------------------------------------------------------

def _write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def _write_corpus(out_dir, train, dev, trg_lang, bpe_merges, info):
    """Writes the files of the module docstring; returns `info` completed
    with counts, paths and the NeurST parameters that read them."""
    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)
    langs = (SRC_LANG, trg_lang)
    files = {"codes": os.path.join(out_dir, "codes.bpe"),
             "vocab": os.path.join(out_dir, "vocab.txt")}
    for split, pairs in (("train", train), ("dev", dev)):
        for side, lang in enumerate(langs):
            files["%s_%s" % (split, lang)] = path = os.path.join(out_dir, "%s.%s" % (split, lang))
            _write_lines(path, [p[side] for p in pairs])

    tokenized = [[moses_tokenize(p[side], lang) for p in train] for side, lang in enumerate(langs)]
    word_counts = collections.Counter(w for side in tokenized for line in side
                                      for w in line.split())
    codes = learn_bpe(word_counts, bpe_merges)
    with open(files["codes"], "w", encoding="utf-8", newline="\n") as f:
        f.write(codes)
    encoder = BPEEncoder(codes)
    token_counts, max_tokens = collections.Counter(), 0
    for side, lang in enumerate(langs):
        encoded = [encoder.line(line) for line in tokenized[side]]
        for line in encoded:
            tokens = line.split()
            token_counts.update(tokens)
            max_tokens = max(max_tokens, len(tokens))
        files["train_bpe_" + lang] = path = os.path.join(out_dir, "train.tok.bpe." + lang)
        _write_lines(path, encoded)
    _write_lines(files["vocab"], ["%s %d" % (t, c) for t, c in
                                  sorted(token_counts.items(), key=lambda x: (-x[1], x[0]))])

    def pipeline(lang):
        return {"language": lang, "tokenizer": "moses", "subtokenizer": "bpe",
                "subtokenizer_codes": files["codes"], "vocab_path": files["vocab"]}

    info.update(
        train_pairs=len(train), dev_pairs=len(dev), bpe_merges=codes.count("\n") - 1,
        vocab_size=len(token_counts), src_lang=SRC_LANG, trg_lang=trg_lang,
        # NeurST's max_src_len/max_trg_len: the longest training sequence in
        # subwords, plus its EOS, so that no training pair is filtered out.
        max_len=max_tokens + 1,
        files=files,
        train_dataset_params={"src_file": files["train_bpe_" + SRC_LANG],
                              "trg_file": files["train_bpe_" + trg_lang],
                              "data_is_processed": True},
        dev_dataset_params={"src_file": files["dev_" + SRC_LANG],
                            "trg_file": files["dev_" + trg_lang],
                            "data_is_processed": False},
        task_params={"src_data_pipeline.class": "TextDataPipeline",
                     "src_data_pipeline.params": pipeline(SRC_LANG),
                     "trg_data_pipeline.class": "TextDataPipeline",
                     "trg_data_pipeline.params": pipeline(trg_lang)})
    return info


def build_corpus(out_dir, locale_root="/usr/share/locale", lang="de", dev_size=500,
                 max_len=30, seed=0, bpe_merges=6000, min_pairs=2000):
    """Builds the corpus from the gettext catalogs of `lang` (the generated
    one where fewer than `min_pairs` clean pairs come out). Returns a dict:
    "source" (what was used), counts ("train_pairs", "dev_pairs",
    "catalog_pairs", "dropped" by reason, "vocab_size": the subwords in
    vocab.txt, to which NeurST adds <UNK>, <SEQ_BEG> and <SEQ_END>, ...),
    "files", and NeurST's parameters for them ("train_dataset_params",
    "dev_dataset_params", "task_params", and "max_len" for max_src_len and
    max_trg_len)."""
    raw, catalogs = catalog_pairs(locale_root, lang)
    pairs, dropped = clean_pairs(raw, lang, max_len)
    if len(pairs) < min_pairs:
        info = fallback_corpus(out_dir, seed=seed, dev_size=dev_size, bpe_merges=bpe_merges)
        info["fallback_reason"] = "%d clean pairs in %d catalogs under %s (fewer than %d)" % (
            len(pairs), len(catalogs), os.path.join(locale_root, lang), min_pairs)
        return info
    train, dev = split_dev(pairs, dev_size, seed)
    info = {"source": "gettext catalogs %s (%d)" % (
        os.path.join(locale_root, lang, "LC_MESSAGES", "*.mo"), len(catalogs)),
        "catalog_pairs": len(raw), "clean_pairs": len(pairs), "dropped": dropped}
    return _write_corpus(out_dir, train, dev, lang, bpe_merges, info)


# The generated corpus ----------------------------------------------------------

# (singular, plural, Singular, Plural, gender)
_NOUNS = [("dog", "dogs", "Hund", "Hunde", "m"), ("cat", "cats", "Katze", "Katzen", "f"),
          ("house", "houses", "Haus", "Häuser", "n"), ("car", "cars", "Auto", "Autos", "n"),
          ("child", "children", "Kind", "Kinder", "n"), ("woman", "women", "Frau", "Frauen", "f"),
          ("man", "men", "Mann", "Männer", "m"), ("bird", "birds", "Vogel", "Vögel", "m"),
          ("book", "books", "Buch", "Bücher", "n"), ("table", "tables", "Tisch", "Tische", "m"),
          ("flower", "flowers", "Blume", "Blumen", "f"),
          ("city", "cities", "Stadt", "Städte", "f"),
          ("teacher", "teachers", "Lehrer", "Lehrer", "m"),
          ("apple", "apples", "Apfel", "Äpfel", "m"),
          ("letter", "letters", "Brief", "Briefe", "m"),
          ("garden", "gardens", "Garten", "Gärten", "m")]
_ADJECTIVES = [("small", "klein"), ("big", "groß"), ("red", "rot"), ("old", "alt"),
               ("new", "neu"), ("green", "grün"), ("young", "jung"), ("beautiful", "schön")]
# (3rd singular, base, past, 3rd singular, plural, past singular, past plural)
_VERBS = [("sees", "see", "saw", "sieht", "sehen", "sah", "sahen"),
          ("finds", "find", "found", "findet", "finden", "fand", "fanden"),
          ("buys", "buy", "bought", "kauft", "kaufen", "kaufte", "kauften"),
          ("paints", "paint", "painted", "malt", "malen", "malte", "malten"),
          ("visits", "visit", "visited", "besucht", "besuchen", "besuchte", "besuchten"),
          ("likes", "like", "liked", "mag", "mögen", "mochte", "mochten"),
          ("needs", "need", "needed", "braucht", "brauchen", "brauchte", "brauchten"),
          ("carries", "carry", "carried", "trägt", "tragen", "trug", "trugen")]
# German articles and adjective endings: [definite][case][gender].
_ARTICLE = {True: {"nom": {"m": "der", "f": "die", "n": "das"},
                   "acc": {"m": "den", "f": "die", "n": "das"}},
            False: {"nom": {"m": "ein", "f": "eine", "n": "ein"},
                    "acc": {"m": "einen", "f": "eine", "n": "ein"}}}
_ENDING = {True: {"nom": {"m": "e", "f": "e", "n": "e"}, "acc": {"m": "en", "f": "e", "n": "e"}},
           False: {"nom": {"m": "er", "f": "e", "n": "es"},
                   "acc": {"m": "en", "f": "e", "n": "es"}}}
_EN_ONES = "one two three four five six seven eight nine".split()
_EN_TEENS = ("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen"
             " nineteen").split()
_EN_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_DE_ONES = "ein zwei drei vier fünf sechs sieben acht neun".split()
_DE_TEENS = ("zehn elf zwölf dreizehn vierzehn fünfzehn sechzehn siebzehn achtzehn"
             " neunzehn").split()
_DE_TENS = "zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig".split()


def _numbers(k):
    """English and German words for 2 <= k <= 99 ("forty-two",
    "zweiundvierzig": German puts the units first)."""
    if k < 10:
        return _EN_ONES[k - 1], _DE_ONES[k - 1]
    if k < 20:
        return _EN_TEENS[k - 10], _DE_TEENS[k - 10]
    tens, ones = divmod(k, 10)
    if not ones:
        return _EN_TENS[tens - 2], _DE_TENS[tens - 2]
    return ("%s-%s" % (_EN_TENS[tens - 2], _EN_ONES[ones - 1]),
            "%sund%s" % (_DE_ONES[ones - 1], _DE_TENS[tens - 2]))


def _noun_phrase(rng, case):
    """(English, German, plural?) for a random noun phrase in `case`."""
    en_sg, en_pl, de_sg, de_pl, gender = rng.choice(_NOUNS)
    adjective = rng.choice(_ADJECTIVES) if rng.random() < 0.5 else None
    if rng.random() < 0.3:  # "forty-two red apples": German plural, strong ending -e
        en_num, de_num = _numbers(rng.randint(2, 99))
        en = [en_num] + ([adjective[0]] if adjective else []) + [en_pl]
        de = [de_num] + ([adjective[1] + "e"] if adjective else []) + [de_pl]
        return " ".join(en), " ".join(de), True
    definite = rng.random() < 0.5
    en = [adjective[0]] if adjective else []
    en = ["the" if definite else ("an" if (en or [en_sg])[0][0] in "aeiou" else "a")] + en
    de = [_ARTICLE[definite][case][gender]]
    if adjective:
        de.append(adjective[1] + _ENDING[definite][case][gender])
    return " ".join(en + [en_sg]), " ".join(de + [de_sg]), False


def _generated_pair(rng):
    subject_en, subject_de, plural = _noun_phrase(rng, "nom")
    object_en, object_de, _ = _noun_phrase(rng, "acc")
    en_3sg, en_base, en_past, de_3sg, de_pl, de_past_sg, de_past_pl = rng.choice(_VERBS)
    present, past = (de_pl, de_past_pl) if plural else (de_3sg, de_past_sg)
    en_present = en_base if plural else en_3sg
    forms = [
        ([subject_en, en_present, object_en], [subject_de, present, object_de], "."),
        # Verb second: an adverb in front moves the verb before the subject.
        (["yesterday", subject_en, en_past, object_en], ["gestern", past, subject_de, object_de],
         "."),
        (["today", subject_en, en_present, object_en], ["heute", present, subject_de, object_de],
         "."),
        ([subject_en, en_past, object_en, "yesterday"], [subject_de, past, "gestern", object_de],
         "."),
        # Questions: German inverts, English needs "do".
        (["do" if plural else "does", subject_en, en_base, object_en],
         [present, subject_de, object_de], "?"),
    ]
    en, de, end = forms[rng.randrange(len(forms))]
    en, de = " ".join(en) + end, " ".join(de) + end
    return en[0].upper() + en[1:], de[0].upper() + de[1:]


def fallback_corpus(out_dir, n=20000, seed=0, dev_size=500, bpe_merges=6000):
    """Writes a generated English->German corpus of `n` distinct pairs in
    build_corpus's format and returns build_corpus's dict. The German is
    grammatical: gender and case agreement, verb-second order after adverbs,
    questions by inversion, numbers with units first."""
    rng = random.Random(seed)
    pairs, seen = [], set()
    while len(pairs) < n:
        pair = _generated_pair(rng)
        if pair[0] not in seen:
            seen.add(pair[0])
            pairs.append(pair)
    train, dev = split_dev(pairs, dev_size, seed)
    info = {"source": "generated (fallback_corpus, seed %d)" % seed}
    return _write_corpus(out_dir, train, dev, "de", bpe_merges, info)


def neurst_corpus(out_dir, generated=False):
    """The demo's corpus: build_corpus, or fallback_corpus if `generated`."""
    return fallback_corpus(out_dir) if generated else build_corpus(out_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--fallback", action="store_true",
                        help="write the generated corpus even where catalogs exist")
    parser.add_argument("--locale-root", default="/usr/share/locale")
    parser.add_argument("--lang", default="de")
    parser.add_argument("--dev-size", type=int, default=500)
    parser.add_argument("--max-len", type=int, default=30, help="most tokens per sentence")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bpe-merges", type=int, default=6000)
    args = parser.parse_args(argv)
    if args.fallback:
        info = fallback_corpus(args.out_dir, seed=args.seed, dev_size=args.dev_size,
                               bpe_merges=args.bpe_merges)
    else:
        info = build_corpus(args.out_dir, args.locale_root, args.lang, args.dev_size,
                            args.max_len, args.seed, args.bpe_merges)
    json.dump(info, sys.stdout, indent=1, ensure_ascii=False)
    print()
    return info


if __name__ == "__main__":
    main()
