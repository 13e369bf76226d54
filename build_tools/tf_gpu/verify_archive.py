"""Checks the staged TensorFlow GPU archive (a tar stream on stdin) without
unpacking it to disk: the TensorFlow module tree is complete (every file of
the wheel's RECORD is there; every file that is not an ELF library, i.e. all
of the Python, byte for byte), the ELF libraries are present and no larger
than in the wheel (stripped), every requirement of tf_gpu_device.txt has a
cp312-or-pure wheel, NeurST's sdist is there, and the CUDA 12 runtime with
its soname. Prints a summary; exits 1 naming what is wrong.

    cat parts* | zstd -d --long=30 | python verify_archive.py --record RECORD \
        --requirements requirements/tf_gpu_device.txt --tensorflow 2.21.0
"""
import argparse
import base64
import csv
import hashlib
import re
import sys
import tarfile


def record_entries(path):
    """{path: (urlsafe-b64 sha256, size)} of the wheel's RECORD."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if len(row) >= 3 and row[1].startswith("sha256="):
                out[row[0]] = (row[1][len("sha256="):], int(row[2]))
    return out


def requirement_names(path):
    names = []
    for line in open(path):
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.append(re.split(r"[=<>!~ ;\[]", line)[0])
    return names


def norm(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", required=True)
    ap.add_argument("--requirements", required=True)
    ap.add_argument("--tensorflow", required=True)
    a = ap.parse_args()
    record = record_entries(a.record)
    seen, problems = {}, []
    wheels, sdists, cuda12, sizes = [], [], {}, {}
    elf, kept_include = 0, False
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
        for m in tar:
            name = m.name[2:] if m.name.startswith("./") else m.name
            sizes[name.split("/")[0]] = sizes.get(name.split("/")[0], 0) + m.size
            if name.startswith("site/"):
                rel = name[len("site/"):]
                if rel.startswith("tensorflow/include/"):
                    kept_include = True
                if rel in record and m.isfile():
                    data = tar.extractfile(m).read()
                    if data[:4] == b"\x7fELF":
                        elf += 1
                        if len(data) > record[rel][1]:
                            problems.append("%s is larger than in the wheel" % rel)
                    else:
                        digest = base64.urlsafe_b64encode(
                            hashlib.sha256(data).digest()).rstrip(b"=").decode()
                        if digest != record[rel][0]:
                            problems.append("%s differs from the wheel" % rel)
                    seen[rel] = True
            elif name.startswith("wheels/") and name.endswith(".whl"):
                wheels.append(name[len("wheels/"):])
            elif name.startswith("sdist/"):
                sdists.append(name[len("sdist/"):])
            elif name.startswith("cuda12/"):
                cuda12[name[len("cuda12/"):]] = m.issym() or m.isfile()
    dist_info = "tensorflow-%s.dist-info/RECORD" % a.tensorflow
    missing = [p for p in record if p not in seen and p != dist_info
               and (kept_include or not p.startswith("tensorflow/include/"))]
    if missing:
        problems.append("%d files of the wheel missing, e.g. %s" % (len(missing), missing[:5]))
    if "tensorflow/__init__.py" not in seen or "tensorflow/python/_pywrap_tensorflow_internal.so" \
            not in seen:
        problems.append("no tensorflow package")
    have = {norm(w.split("-")[0]): w for w in wheels}
    for req in requirement_names(a.requirements):
        w = have.get(norm(req))
        if w is None:
            problems.append("no wheel for %s" % req)
        elif not re.search(r"-(cp312-cp312|py3-none|py2\.py3-none|cp312-abi3|cp3\d+-abi3)-", w):
            problems.append("%s is not for CPython 3.12" % w)
    if not any(s.startswith("neurst-") for s in sdists):
        problems.append("no NeurST sdist")
    if "libcudart.so.12" not in cuda12:
        problems.append("no libcudart.so.12 among %s" % sorted(cuda12))
    print("archive: tensorflow %s, %d of its files (%d ELF, include/ %s), %d wheels, %s, cuda12: %s"
          % (a.tensorflow, len(seen), elf, "kept" if kept_include else "dropped", len(wheels),
             ", ".join(sdists), ", ".join(sorted(cuda12))))
    print("uncompressed MB by folder:", {k: round(v / 1e6, 1) for k, v in sorted(sizes.items())})
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
