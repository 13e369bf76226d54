"""The demo corpus's training files (examples/neurst/demo_corpus.py: Moses
by sacremoses, BPE learned and applied by subword-nmt, data_is_processed for
NeurST) are, token for token, what NeurST's own TextDataPipeline (Moses, then
its BPE over the corpus's codes and vocabulary) makes of the raw training
text: the generated corpus, and 3000 pairs of this machine's gettext
catalogs where it has them (markup, placeholders, apostrophes, dashes)."""
import glob
import os

import demo_corpus as dc  # examples/neurst (conftest puts it on sys.path)
import pytest


def _catalog_corpus(out_dir):
    raw, _ = dc.catalog_pairs()
    pairs, _ = dc.clean_pairs(raw)
    train, dev = dc.split_dev(pairs[:3000], 100)
    return dc._write_corpus(out_dir, train, dev, "de", 2000, {"source": "catalogs"})


@pytest.mark.parametrize("source", ["generated", "catalogs"])
def test_training_files_are_neursts_pipeline_output(tmp_path, source):
    if source == "catalogs" and not glob.glob("/usr/share/locale/de/LC_MESSAGES/*.mo"):
        pytest.skip("no German gettext catalogs here")
    from neurst.data.data_pipelines.text_data_pipeline import TextDataPipeline
    from neurst.data.text.bpe import BPE
    out = str(tmp_path / source)
    info = dc.fallback_corpus(out, n=1000, dev_size=50) if source == "generated" \
        else _catalog_corpus(out)
    # NeurST's BPE memoises in one cache shared by all its instances (a
    # mutable default argument): segmentations of another corpus's codes
    # must not answer for this one's.
    BPE.bpe_encode.__defaults__[-1].clear()
    files, params = info["files"], info["task_params"]
    for lang in (info["src_lang"], info["trg_lang"]):
        side = "src" if lang == info["src_lang"] else "trg"
        pipeline = TextDataPipeline(**params[side + "_data_pipeline.params"])
        with open(files["train_" + lang], encoding="utf-8") as f:
            raw = f.read().splitlines()
        with open(files["train_bpe_" + lang], encoding="utf-8") as f:
            ours = f.read().splitlines()
        assert len(raw) == len(ours) == info["train_pairs"]
        differ = [(r, o) for r, o in zip(raw, ours) if pipeline.preprocess(r).split() != o.split()]
        assert not differ, (lang, len(differ), differ[:3])
        assert any("@@" in line for line in ours)  # BPE split words
        unk = pipeline.map_token_to_id("<UNK>")
        assert all(unk not in pipeline.encode(line, is_processed=True) for line in ours)
    assert os.path.getsize(files["codes"]) > 0
