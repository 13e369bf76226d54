"""examples/neurst/demo_corpus: .mo parsing, each cleaning rule, the dev
split, the files for NeurST and their determinism, the generated corpus, and
the real catalogs of this machine where it has them. That the training files
are what NeurST's own pipeline makes of the text: tests/neurst."""
import filecmp
import functools
import glob
import os
import struct
import subprocess
import sys

import demo_corpus as dc  # examples/neurst (conftest puts it on sys.path)
import pytest

HEADER = (b"Project-Id-Version: test\nContent-Type: text/plain; charset=%s\n"
          b"Plural-Forms: nplurals=2; plural=(n != 1);\n")


def write_mo(path, entries, charset=b"UTF-8", order="<"):
    """A .mo file as msgfmt writes it: header, then the two string tables
    (length, offset), then the strings, each NUL-terminated; no hash table."""
    entries = sorted([(b"", HEADER % charset)] + list(entries))
    n = len(entries)
    ids_at = 28
    strs_at = ids_at + 8 * n
    blob = bytearray()
    tables = {ids_at: [], strs_at: []}
    data_at = strs_at + 8 * n
    for msgid, msgstr in entries:
        for table, s in ((ids_at, msgid), (strs_at, msgstr)):
            tables[table].append((len(s), data_at + len(blob)))
            blob += s + b"\x00"
    with open(path, "wb") as f:
        f.write(struct.pack(order + "7I", 0x950412de, 0, n, ids_at, strs_at, 0, 0))
        for table in (ids_at, strs_at):
            for length, offset in tables[table]:
                f.write(struct.pack(order + "2I", length, offset))
        f.write(bytes(blob))


@pytest.mark.parametrize("order", ["<", ">"])
def test_read_mo(tmp_path, order):
    path = str(tmp_path / "t.mo")
    write_mo(path, [(b"Open", b"\xc3\x96ffnen"),
                    (b"%d file\x00%d files", b"%d Datei\x00%d Dateien"),
                    (b"menu\x04_Quit", b"_Beenden")], order=order)
    assert sorted(dc.read_mo(path)) == [("%d file", "%d Datei"), ("Open", "Öffnen"),
                                        ("_Quit", "_Beenden")]


def test_read_mo_charset(tmp_path):
    path = str(tmp_path / "latin1.mo")
    write_mo(path, [(b"Open", b"\xd6ffnen")], charset=b"ISO-8859-1")
    assert dc.read_mo(path) == [("Open", "Öffnen")]
    bad = str(tmp_path / "bad.mo")
    write_mo(bad, [(b"Open", b"\xd6ffnen"), (b"Save", b"Speichern")])  # latin-1 in UTF-8
    assert dc.read_mo(bad) == [("Save", "Speichern")]


def cleaned(src, trg):
    """The cleaned pair, or the reason it is dropped."""
    kept, dropped = dc.clean_pairs([(src, trg)])
    return kept[0] if kept else next(iter(dropped))


def test_markup_entities_and_whitespace():
    assert cleaned('<b>Bold</b> <span weight="bold">text</span>',
                   "<b>Fetter</b> <span weight='bold'>Text</span>") == ("Bold text", "Fetter Text")
    assert cleaned("Show <commit> now", "<Commit> jetzt zeigen") == (
        "Show <commit> now", "<Commit> jetzt zeigen")  # arguments, not markup
    assert cleaned("Tom &amp; Jerry &lt;b&gt;", "Tom &amp; Jerry sind &lt;b&gt;") == (
        "Tom & Jerry <b>", "Tom & Jerry sind <b>")
    assert cleaned("Line one\n\n  line\ttwo\x1b ", "Zeile\u00ad eins\nZeile zwei") == (
        "Line one line two", "Zeile eins Zeile zwei")


def test_accelerators():
    assert cleaned("_Open File", "Datei _öffnen") == ("Open File", "Datei öffnen")
    assert cleaned("&Save all", "Alle &speichern") == ("Save all", "Alle speichern")
    assert cleaned("O_pen it", "Ö_ffnen Sie es") == ("Open it", "Öffnen Sie es")
    assert cleaned("_File", "Datei (_F)") == ("File", "Datei")
    # Identifiers, copied by the translation, and escaped literals stay.
    assert cleaned("Set work_mem to 4", "work_mem auf 4 setzen") == (
        "Set work_mem to 4", "work_mem auf 4 setzen")
    assert cleaned("Set max_wal_size", "max_wal_senders setzen") == (
        "Set max_wal_size", "max_wal_senders setzen")
    assert cleaned("Prefix a__b", "Präfix c__d") == ("Prefix a__b", "Präfix c__d")


def test_punctuation_normalisation():
    assert cleaned("File “%s” not found…", "Datei „%s“ nicht gefunden…") == (
        'File "%s" not found...', 'Datei "%s" nicht gefunden...')
    assert cleaned("File %s", "Datei »%s«") == ("File %s", 'Datei "%s"')


@pytest.mark.parametrize("src, trg, reason", [
    ("Open", "", "empty"),
    ("<b></b>", "<i>x</i>", "empty"),
    ("Firefox", "Firefox", "untranslated"),
    ("OK", "Ok", "untranslated"),
    ("%s: %s (%d)", "%s => %s (%d)", "non_letters"),
    ("-1, -2 ...", "-1, -2 usw", "non_letters"),
    ("Copied %s to %s", "%s kopiert", "placeholders"),
    ("%d of %s", "%s von %d %%", "placeholders"),
    ("Hello {name}", "Hallo {0}", "placeholders"),
    (" ".join(["word"] * 31), " ".join(["Wort"] * 30), "too_long"),
    ("Quit", "Das Programm jetzt sofort beenden", "length_ratio"),
])
def test_dropped(src, trg, reason):
    assert cleaned(src, trg) == reason


def test_placeholders_kept_in_any_order():
    # Checked before Moses's normalisation, which spaces out "%(user)s".
    assert cleaned("%(user)s has %1$s and {0}", "{0} und %1$s hat %(user)s") == (
        "% (user) s has %1$s and {0}", "{0} und %1$s hat % (user) s")


def test_max_len_counts_tokens():
    src = " ".join(["a,"] * 15)  # 15 words, 30 tokens
    kept, _ = dc.clean_pairs([(src, src.replace("a", "b"))], max_len=30)
    assert len(kept) == 1
    _, dropped = dc.clean_pairs([(src, src.replace("a", "b"))], max_len=29)
    assert dropped == {"too_long": 1}


def test_dedup_keeps_first():
    pairs = [("Open File", "Datei öffnen"), ("Save “all”", "Alle speichern"),
             ("open file:", "Datei öffnen:"), ("Open File…", "Öffne Datei ..."),
             ('Save "all"', "Speichere alle")]
    kept, dropped = dc.clean_pairs(pairs)
    assert kept == [("Open File", "Datei öffnen"), ('Save "all"', "Alle speichern")]
    assert dropped == {"duplicate": 3}


def test_split_dev():
    pairs = [("sentence %d" % i, "Satz %d" % i) for i in range(200)]
    train, dev = dc.split_dev(pairs, 30, seed=0)
    assert len(dev) == 30 and len(train) == 170
    assert sorted(train + dev) == sorted(pairs)
    # The membership depends on the sentence, not on the input order.
    assert dc.split_dev(pairs[::-1], 30, seed=0) == (train, dev)
    assert dc.split_dev(pairs, 30, seed=1)[1] != dev


def test_learn_and_apply_bpe():
    # Sennrich et al.'s example, worked by hand with subword-nmt's rules: the
    # most frequent pair first, ties to the larger pair ("s t</w>" before
    # "e s", both 9; then "w est</w>" > "n e" > "e w", all 6).
    codes = dc.learn_bpe({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 100)
    assert codes.splitlines() == [
        "#version: 0.2", "s t</w>", "e st</w>", "l o", "w est</w>", "n e", "ne west</w>",
        "lo w</w>", "w i", "wi d", "wid est</w>", "w e", "we r</w>", "lo wer</w>"]
    encoder = dc.BPEEncoder(codes)
    assert encoder.line("lowest newer") == "lo@@ west ne@@ wer"  # merges in rank order
    assert encoder.line("  a  low ") == "a low"  # single spaces
    assert dc.learn_bpe({"ab": 1}, 100) == "#version: 0.2\n"  # min_frequency 2
    assert len(dc.learn_bpe({"abcdef": 9}, 3).splitlines()) == 4  # num_merges


def make_locale(root, n=40):
    """Two catalogs for de: 2 * n numbered messages and 4 with accelerators."""
    d = os.path.join(root, "de", "LC_MESSAGES")
    os.makedirs(d)
    nouns = [("file", "Datei"), ("folder", "Ordner"), ("window", "Fenster"), ("key", "Schlüssel")]
    write_mo(os.path.join(d, "b.mo"), [
        (("Cannot open %%s %s number %d" % (en, i)).encode(),
        ("Kann %%s %s Nummer %d nicht öffnen" % (de, i)).encode()) for i in range(n)
        for en, de in nouns[:2]])
    write_mo(os.path.join(d, "a.mo"), [
        (("_Delete the %s" % en).encode(), ("%s _löschen" % de).encode()) for en, de in nouns])


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


def check_files(info):
    files = info["files"]
    src, trg = info["src_lang"], info["trg_lang"]
    train = list(zip(read(files["train_" + src]), read(files["train_" + trg])))
    dev = list(zip(read(files["dev_" + src]), read(files["dev_" + trg])))
    assert (len(train), len(dev)) == (info["train_pairs"], info["dev_pairs"])
    assert not {s for s, _ in train} & {s for s, _ in dev}
    codes = read(files["codes"])
    assert codes[0] == "#version: 0.2" and len(codes) == info["bpe_merges"] + 1
    assert all(len(line.split(" ")) == 2 for line in codes[1:])
    encoder = dc.BPEEncoder("\n".join(codes) + "\n")
    vocab = {line.split()[0] for line in read(files["vocab"])}
    assert len(vocab) == info["vocab_size"]
    longest = 0
    for side, lang in enumerate((src, trg)):
        bpe = read(files["train_bpe_" + lang])
        assert bpe == [encoder.line(dc.moses_tokenize(p[side], lang)) for p in train]
        assert {t for line in bpe for t in line.split()} <= vocab
        longest = max([longest] + [len(line.split()) for line in bpe])
    assert info["max_len"] == longest + 1
    assert info["train_dataset_params"] == {"src_file": files["train_bpe_" + src],
                                            "trg_file": files["train_bpe_" + trg],
                                            "data_is_processed": True}
    assert info["dev_dataset_params"] == {"src_file": files["dev_" + src],
                                          "trg_file": files["dev_" + trg],
                                          "data_is_processed": False}
    for side, lang in (("src", src), ("trg", trg)):
        assert info["task_params"][side + "_data_pipeline.params"] == {
            "language": lang, "tokenizer": "moses", "subtokenizer": "bpe",
            "subtokenizer_codes": files["codes"], "vocab_path": files["vocab"]}
    return train, dev


def test_build_corpus(tmp_path):
    make_locale(str(tmp_path / "locale"))
    build = functools.partial(dc.build_corpus, locale_root=str(tmp_path / "locale"),
                              dev_size=10, bpe_merges=200, min_pairs=20)
    info = build(str(tmp_path / "one"))
    assert info["source"].startswith("gettext") and "fallback_reason" not in info
    assert info["catalog_pairs"] == 84 and info["clean_pairs"] == 84 and info["dropped"] == {}
    train, dev = check_files(info)
    assert ("Delete the file", "Datei löschen") in train + dev  # accelerators and order
    # Deterministic: a second build writes the same bytes.
    build(str(tmp_path / "two"))
    names = sorted(os.listdir(str(tmp_path / "one")))
    assert len(names) == 8
    assert filecmp.cmpfiles(str(tmp_path / "one"), str(tmp_path / "two"), names,
                            shallow=False)[0] == names


def test_build_corpus_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(dc, "fallback_corpus", functools.partial(dc.fallback_corpus, n=300))
    info = dc.build_corpus(str(tmp_path / "out"), locale_root=str(tmp_path / "none"),
                           dev_size=20)
    assert info["source"].startswith("generated")
    assert info["fallback_reason"].startswith("0 clean pairs in 0 catalogs")
    assert (info["train_pairs"], info["dev_pairs"]) == (280, 20)


def test_fallback_corpus(tmp_path):
    assert dc._numbers(42) == ("forty-two", "zweiundvierzig")
    assert [dc._numbers(k)[1] for k in (2, 17, 21, 30)] == [
        "zwei", "siebzehn", "einundzwanzig", "dreißig"]
    info = dc.fallback_corpus(str(tmp_path / "one"), n=400, dev_size=40)
    train, dev = check_files(info)
    assert (len(train), len(dev)) == (360, 40)
    assert all(s[0].isupper() and s[-1] in ".?" for pair in train for s in pair)
    dc.fallback_corpus(str(tmp_path / "two"), n=400, dev_size=40)
    names = sorted(os.listdir(str(tmp_path / "one")))
    assert filecmp.cmpfiles(str(tmp_path / "one"), str(tmp_path / "two"), names,
                            shallow=False)[0] == names


def test_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dc, "fallback_corpus", functools.partial(dc.fallback_corpus, n=200))
    info = dc.main([str(tmp_path), "--fallback", "--dev-size", "10"])
    out = capsys.readouterr().out
    assert '"train_pairs": 190' in out and info["files"]["vocab"] in out


@pytest.mark.skipif(not glob.glob("/usr/share/locale/de/LC_MESSAGES/*.mo"),
                    reason="no German gettext catalogs here")
def test_real_catalogs():
    raw, catalogs = dc.catalog_pairs()
    pairs, dropped = dc.clean_pairs(raw)
    assert len(pairs) >= 10000, (len(raw), len(catalogs), dropped)
    train, dev = dc.split_dev(pairs)
    assert len(dev) == 500 and len(train) == len(pairs) - 500


def test_imports_neither_tensorflow_nor_neurst():
    code = ("import sys; sys.path.insert(0, %r); import demo_corpus; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'neurst', 'lightseq_tf')))" % os.path.dirname(dc.__file__))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
