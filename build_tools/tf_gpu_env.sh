#!/usr/bin/env bash
# TensorFlow 2.21's GPU build on the GPU test machine, which has Python 3.12,
# PyTorch and CUDA 13 but no TensorFlow and no package index. A test-only
# arrangement (README: "TensorFlow's GPU build on the test machine").
#
# CPU side (this machine, network on):
#   build_tools/tf_gpu_env.sh stage [--cublas12] [--ci-so[=WHEEL|DIR]] [--no-include]
#       downloads the `tensorflow` cp312 wheel (the version of ci.txt's
#       tensorflow-cpu), the wheels of requirements/tf_gpu_device.txt, NeurST's
#       sdist (its own tests), Debian's libcudart12 (--cublas12: also
#       libcublas12 + libcublaslt12) and this machine's German gettext
#       catalogs (the NeurST demo corpus's text); packs them into one
#       tar | zstd -12 --long=30 stream split into parts of TFGPU_PART_BYTES
#       (55 MB) under .tfgpu/ (ignored through .git/info/exclude), checks the
#       parts, and prints the device calls. --ci-so: also carry an op library
#       built here the way CI builds it (CUDA 12.4); --ci-so=WHEEL|DIR: the
#       one in CI's wheel or in DIR (with its _build_info.py).
#   build_tools/tf_gpu_env.sh calls      prints the device calls again
#   build_tools/tf_gpu_env.sh verify     re-checks the staged parts
#
# Device side (the GPU test machine; each step idempotent):
#   build_tools/tf_gpu_env.sh receive    moves the parts this call carried
#                                        from .tfgpu/ to $TFGPU_STASH
#   build_tools/tf_gpu_env.sh install    reassembles, unpacks into
#                                        $TFGPU_ROOT/site, installs the wheels,
#                                        links the CUDA libraries TF opens,
#                                        writes $TFGPU_ROOT/env.sh, and checks
#                                        that TF lists the GPU
#   build_tools/tf_gpu_env.sh build      builds this package in place against
#                                        that TF with nvcc (LIGHTSEQ_TF_CUDA=1)
#   build_tools/tf_gpu_env.sh use-so     installs the carried CI-built op
#                                        library in place instead
#   . "$TFGPU_ROOT/env.sh"               the environment for everything after
#
# build_tools/tf_gpu_check.sh runs these plus the tests and benchmarks.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
STAGE="${TFGPU_STAGE_DIR:-$here/.tfgpu}"
CACHE="${TFGPU_CACHE:-$here/build/tfgpu_cache}"
STASH="${TFGPU_STASH:-/tmp/tfstash}"
ROOT="${TFGPU_ROOT:-/tmp/tfgpu}"
PART_BYTES="${TFGPU_PART_BYTES:-55000000}"
ARCHIVE=tfgpu.tar.zst
PY="${PYTHON:-python3}"

log() { echo "[tf_gpu_env] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
pin() {  # pin NAME FILE: the version FILE pins for NAME
  sed -n "s/^$1==\([^ #]*\).*/\1/p" "$here/requirements/$2" | head -1
}
TF_VERSION="$(pin tensorflow-cpu ci.txt)"
NEURST_VERSION="$(pin neurst neurst.txt)"

# ---------------------------------------------------------------- CPU side --

# pip's options for the GPU machine's interpreter: CPython 3.12, x86-64.
PIP_TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

download_wheels() {
  mkdir -p "$CACHE/wheels" "$CACHE/tf" "$CACHE/sdist" "$CACHE/tools"
  "$PY" -m pip download -q --no-deps "${PIP_TARGET[@]}" -d "$CACHE/tf" "tensorflow==$TF_VERSION"
  # CI's pins (name==version lines of ci.txt, keras2.txt, neurst.txt) as
  # constraints; a fresh folder each time, so that a changed pin leaves no
  # second version behind (pip's own cache makes it quick). NeurST is
  # published as an sdist only: pure Python, so its wheel is built here; the
  # sdist goes along too (its tests are in it: neurst_own_tests.sh).
  (cd "$here/requirements" && grep -h '^[A-Za-z0-9_.-]*==' ci.txt keras2.txt neurst.txt) \
    > "$CACHE/constraints.txt"
  rm -rf "$CACHE/wheels.new" && mkdir -p "$CACHE/wheels.new"
  "$PY" -m pip download -q --no-deps "${PIP_TARGET[@]}" --no-binary=neurst \
    -d "$CACHE/wheels.new" -c "$CACHE/constraints.txt" -r "$here/requirements/tf_gpu_device.txt"
  mv "$CACHE"/wheels.new/neurst-*.tar.gz "$CACHE/sdist/"
  cp -p "$CACHE"/wheels/neurst-*-py3-none-any.whl "$CACHE/wheels.new/" 2>/dev/null || true
  rm -rf "$CACHE/wheels" && mv "$CACHE/wheels.new" "$CACHE/wheels"
  compgen -G "$CACHE/wheels/neurst-$NEURST_VERSION-py3-none-any.whl" >/dev/null ||
    "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$CACHE/wheels" \
      "$CACHE/sdist/neurst-$NEURST_VERSION.tar.gz"
  # zstd for the device, where the zstd program may be missing: a wheel that
  # bundles libzstd, carried beside the parts (not inside them).
  "$PY" -m pip download -q --no-deps "${PIP_TARGET[@]}" -d "$CACHE/tools" "zstandard==0.25.0"
}

# Debian's CUDA 12.4 runtime (non-free, trixie: build_tools/debian_trixie.sh,
# as the CUDA 12.4 toolchain is fetched); nothing of the system's apt changes.
download_debs() {
  local pkgs=(libcudart12)
  [ "$WITH_CUBLAS12" = 1 ] && pkgs+=(libcublas12 libcublaslt12)
  local missing=() p
  mkdir -p "$CACHE/debs"
  for p in "${pkgs[@]}"; do compgen -G "$CACHE/debs/${p}_*.deb" >/dev/null || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    # shellcheck source=build_tools/debian_trixie.sh
    . "$here/build_tools/debian_trixie.sh"
    trixie_download "$CACHE/debs" "${missing[@]}" || die "could not download ${missing[*]}"
  fi
  DEBS=()
  for p in "${pkgs[@]}"; do
    compgen -G "$CACHE/debs/${p}_*.deb" >/dev/null || die "no $p deb"
    DEBS+=("$(ls "$CACHE/debs/${p}"_*.deb | tail -1)")
  done
}

# The op library the way CI builds it (against this environment's
# tensorflow-cpu, CUDA 12.4: build_tools/cuda12_toolchain.sh), or taken from a
# wheel CI made (--ci-so=WHEEL), for `use-so` there.
build_ci_so() {
  local src="$1" dir="$CACHE/ci_so"
  case "$src" in
    *.whl)
      rm -rf "$dir" && mkdir -p "$dir"
      unzip -q -j -o "$src" 'lightseq_tf/_lightseq_ops*.so' 'lightseq_tf/_build_info.py' -d "$dir" ;;
    "$dir")
      if ! compgen -G "$dir/_lightseq_ops*.so" >/dev/null; then
        mkdir -p "$dir"
        log "building the op library as CI does (CUDA 12.4) into $dir"
        (cd "$here" && LIGHTSEQ_TF_CUDA=1 \
           LIGHTSEQ_TF_CUDA_HOME="${LIGHTSEQ_TF_CUDA_HOME:-$(build_tools/cuda12_toolchain.sh)}" \
           "$PY" -m build_tools.build -o "$dir/_lightseq_ops.so")
      fi ;;
    *) rm -rf "$dir" && mkdir -p "$dir" && cp "$src"/_lightseq_ops*.so "$src/_build_info.py" "$dir/" ;;
  esac
  compgen -G "$dir/_lightseq_ops*.so" >/dev/null && [ -f "$dir/_build_info.py" ] ||
    die "no op library with its _build_info.py from $src"
  CI_SO="$dir"
}

# The tree inside the archive:
#   site/tensorflow, site/tensorflow-X.dist-info   the wheel, stripped
#   wheels/*.whl  sdist/neurst-*.tar.gz  cuda12/*.so*  locale/de/LC_MESSAGES/*.mo
#   MANIFEST.txt
make_tree() {
  local tree="$CACHE/tree" whl
  whl="$(ls "$CACHE"/tf/tensorflow-"$TF_VERSION"-cp312-*.whl)"
  rm -rf "$tree" && mkdir -p "$tree/site" "$tree/cuda12" "$tree/locale/de"
  unzip -q "$whl" -d "$tree/site"
  # RECORD lists the unstripped files' hashes; `verify` checks the rest against it.
  mv "$tree/site/tensorflow-$TF_VERSION.dist-info/RECORD" "$CACHE/RECORD"
  [ "$WITH_INCLUDE" = 1 ] || rm -rf "$tree/site/tensorflow/include"
  # Symbols for debuggers only; the dynamic symbol tables stay.
  find "$tree/site" -type f \( -name '*.so' -o -name '*.so.*' \) -print0 |
    xargs -0 -P "$(nproc)" -n 8 strip --strip-unneeded
  mkdir -p "$tree/wheels" && cp "$CACHE"/wheels/*.whl "$tree/wheels/"
  mkdir -p "$tree/sdist" && cp "$CACHE"/sdist/neurst-*.tar.gz "$tree/sdist/"
  local x="$CACHE/debs/x"
  for d in "${DEBS[@]}"; do
    rm -rf "$x" && dpkg-deb -x "$d" "$x"
    find "$x" -name 'lib*.so.*' -exec cp -P {} "$tree/cuda12/" \;
  done
  rm -rf "$x"
  cp -r /usr/share/locale/de/LC_MESSAGES "$tree/locale/de/" 2>/dev/null || log "no German gettext catalogs here: the demo corpus will be the generated one"
  if [ -n "$CI_SO" ]; then
    mkdir -p "$tree/ci_so" && cp "$CI_SO"/_lightseq_ops*.so "$CI_SO/_build_info.py" "$tree/ci_so/"
  fi
  {
    echo "staged $(date -u +%FT%TZ) on $(uname -m), by $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "tensorflow $TF_VERSION ($(basename "$whl")), include/ $([ "$WITH_INCLUDE" = 1 ] && echo kept || echo dropped), .so stripped"
    (cd "$tree" && ls wheels sdist cuda12 ci_so 2>/dev/null || true)
    for d in "${DEBS[@]}"; do echo "deb $(basename "$d")"; done
    echo "catalogs $(ls "$tree/locale/de/LC_MESSAGES" 2>/dev/null | wc -l)"
  } > "$tree/MANIFEST.txt"
}

# What the parts are made of: the files' names and sizes, the options, this
# script and the checker.
inputs_stamp() {
  {
    (cd "$CACHE" && find tf wheels sdist tools ${CI_SO:+"$CI_SO"} -type f -printf '%p %s\n' 2>/dev/null | sort)
    for d in "${DEBS[@]}"; do basename "$d"; done
    ls -l /usr/share/locale/de/LC_MESSAGES 2>/dev/null | md5sum
    echo "cublas12=$WITH_CUBLAS12 include=$WITH_INCLUDE ci_so=$CI_SO part=$PART_BYTES"
    cat "$0" "$here/build_tools/tf_gpu/verify_archive.py"
  } | sha256sum | cut -c1-32
}

pack() {
  rm -rf "$STAGE" && mkdir -p "$STAGE/tools"
  tar -C "$CACHE/tree" -cf - . | zstd -q -12 --long=30 -T0 -o "$CACHE/$ARCHIVE" -f
  split -b "$PART_BYTES" -d -a 2 "$CACHE/$ARCHIVE" "$STAGE/$ARCHIVE.part"
  rm -f "$CACHE/$ARCHIVE"
  (cd "$STAGE" && sha256sum "$ARCHIVE".part* > parts.sha256)
  cp "$CACHE"/tools/zstandard-*.whl "$STAGE/tools/"
  cp "$CACHE/tree/MANIFEST.txt" "$STAGE/"
  rm -rf "$CACHE/tree"  # 1.6 GB; the parts and the stamp are what a repeat checks
}

exclude_stage() {
  local common exclude rel
  common="$(git -C "$here" rev-parse --git-common-dir)"
  case "$common" in /*) ;; *) common="$here/$common" ;; esac
  exclude="$common/info/exclude"
  rel="/${STAGE#"$here"/}/"
  mkdir -p "$(dirname "$exclude")"
  grep -qxF "$rel" "$exclude" 2>/dev/null || echo "$rel" >> "$exclude"
  if [ -n "$(git -C "$here" status --porcelain --ignored=no -- "$STAGE" 2>/dev/null)" ]; then
    die "$STAGE is not ignored by git"
  fi
  if [ "$(git -C "$here" rev-parse --git-dir)" != "$(git -C "$here" rev-parse --git-common-dir)" ]; then
    log "note: $here is a linked worktree; device calls send the session's own checkout,"
    log "      so stage there (or set TFGPU_STAGE_DIR=<that checkout>/.tfgpu)"
  fi
}

# Checks the parts: sizes, hashes, and that the reassembled stream unpacks to
# a complete TensorFlow module tree (every file of the wheel's RECORD present,
# every non-ELF file byte-identical), the wheels, the CUDA 12 runtime's
# soname. It cannot import that TensorFlow here (another Python).
verify() {
  [ -f "$STAGE/parts.sha256" ] || die "nothing staged in $STAGE"
  (cd "$STAGE" && sha256sum --quiet -c parts.sha256) || die "a part's hash differs"
  local p big=0
  for p in "$STAGE/$ARCHIVE".part*; do
    [ "$(stat -c %s "$p")" -le "$PART_BYTES" ] || big=1
  done
  [ $big = 0 ] || die "a part exceeds $PART_BYTES bytes"
  cat "$STAGE/$ARCHIVE".part* | zstd -q -d --long=30 -c |
    "$PY" "$here/build_tools/tf_gpu/verify_archive.py" --record "$CACHE/RECORD" \
      --requirements "$here/requirements/tf_gpu_device.txt" --tensorflow "$TF_VERSION"
}

print_calls() {
  [ -f "$STAGE/parts.sha256" ] || die "nothing staged in $STAGE"
  "$PY" "$here/build_tools/tf_gpu/device_calls.py" --stage "$STAGE" --repo "$here"
}

stage() {
  WITH_CUBLAS12=0 WITH_INCLUDE=1 CI_SO=""
  for a in "$@"; do
    case "$a" in
      --cublas12) WITH_CUBLAS12=1 ;;
      --no-include) WITH_INCLUDE=0 ;;
      --ci-so) CI_SO="$CACHE/ci_so" ;;
      --ci-so=*) CI_SO="$(cd "$(dirname "${a#--ci-so=}")" && pwd)/$(basename "${a#--ci-so=}")" ;;
      *) die "unknown stage option $a" ;;
    esac
  done
  for tool in zstd strip split dpkg-deb apt-get unzip; do
    command -v $tool >/dev/null || die "stage needs $tool"
  done
  local t0=$SECONDS t
  exclude_stage
  download_wheels; download_debs
  t=$SECONDS; log "downloads: $((t - t0)) s"
  [ -z "$CI_SO" ] || build_ci_so "$CI_SO"
  local inputs
  inputs="$(inputs_stamp)"
  if [ "$(cat "$STAGE/inputs.stamp" 2>/dev/null)" = "$inputs" ] && (verify) >/dev/null 2>&1; then
    log "the parts in $STAGE are already these inputs' (verified); nothing to pack"
  else
    make_tree; log "tree (unzip, strip, copy): $((SECONDS - t)) s"; t=$SECONDS
    pack; log "tar | zstd -12 --long=30, split: $((SECONDS - t)) s"; t=$SECONDS
    verify; log "verify: $((SECONDS - t)) s"
    echo "$inputs" > "$STAGE/inputs.stamp"
  fi
  log "staged in $((SECONDS - t0)) s: $(du -cb "$STAGE/$ARCHIVE".part* | tail -1 | cut -f1) bytes in" \
      "$(ls "$STAGE/$ARCHIVE".part* | wc -l) parts under $STAGE"
  print_calls
}

# ------------------------------------------------------------- device side --

receive() {
  mkdir -p "$STASH"
  [ -f "$STAGE/parts.sha256" ] && cp "$STAGE/parts.sha256" "$STASH/"
  [ -d "$STAGE/tools" ] && cp -r "$STAGE/tools" "$STASH/"
  [ -f "$STASH/parts.sha256" ] || die "no parts.sha256 here or in $STASH: carry .tfgpu/parts.sha256"
  local p name moved=0
  for p in "$STAGE/$ARCHIVE".part*; do
    [ -e "$p" ] || continue
    name="$(basename "$p")"
    (cd "$(dirname "$p")" && grep " $name\$" "$STASH/parts.sha256" | sha256sum --quiet -c -) ||
      die "$name: hash differs from parts.sha256 (staged again since?)"
    mv "$p" "$STASH/$name"; moved=$((moved + 1))
  done
  local have=0 want
  want="$(wc -l < "$STASH/parts.sha256")"
  for name in $(awk '{print $2}' "$STASH/parts.sha256"); do [ -f "$STASH/$name" ] && have=$((have + 1)); done
  log "received $moved part(s); $have of $want in $STASH"
}

decompress() {  # stdin zstd -> stdout
  if command -v zstd >/dev/null; then
    zstd -q -d --long=30 -c
  else
    local z="$STASH/zstd_site"
    [ -d "$z" ] || "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$z" "$STASH"/tools/zstandard-*.whl
    PYTHONPATH="$z" "$PY" -c 'import sys, zstandard
zstandard.ZstdDecompressor(max_window_size=1 << 30).copy_stream(sys.stdin.buffer, sys.stdout.buffer)'
  fi
}

install() {
  local t0=$SECONDS stamp
  [ -f "$STASH/parts.sha256" ] || die "no parts received (run receive with the parts first)"
  stamp="$(sha256sum < "$STASH/parts.sha256" | cut -c1-16)"
  if [ "$(cat "$ROOT/.stamp" 2>/dev/null)" != "$stamp" ]; then
    (cd "$STASH" && sha256sum --quiet -c parts.sha256) || die "parts missing or damaged in $STASH"
    rm -rf "$ROOT" && mkdir -p "$ROOT"
    cat "$STASH/$ARCHIVE".part* | decompress | tar -x -C "$ROOT"
    log "unpacked in $((SECONDS - t0)) s"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$ROOT/site" "$ROOT"/wheels/*.whl
    log "wheels installed into $ROOT/site"
    echo "$stamp" > "$ROOT/.stamp"
  else
    log "$ROOT already holds these parts"
  fi
  # TFGPU_DRY_RUN=1: a rehearsal on a machine without CUDA (libraries
  # missing, no GPU listed) that goes on to the end.
  "$PY" "$here/build_tools/tf_gpu/cuda_libs.py" --cuda12 "$ROOT/cuda12" --out "$ROOT/cudalib" \
    --json "$ROOT/cuda_libs.json" || [ "${TFGPU_DRY_RUN:-0}" = 1 ]
  write_env
  # shellcheck disable=SC1091
  . "$ROOT/env.sh"
  "$PY" "$here/build_tools/tf_gpu/cuda_libs.py" --check-tf || [ "${TFGPU_DRY_RUN:-0}" = 1 ]
  log "install done in $((SECONDS - t0)) s"
}

machine_cuda() {  # the machine's CUDA toolkit root
  if [ -x /usr/local/cuda/bin/nvcc ]; then
    readlink -f /usr/local/cuda
  else
    dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")"
  fi
}

write_env() {
  local cuda_home
  cuda_home="$(machine_cuda)"
  mkdir -p "$ROOT/hook" "$ROOT/nvcache"
  # What the installed package's .pth does: arm the NeurST hook in every process.
  echo "import lightseq_tf_neurst_hook; lightseq_tf_neurst_hook.install()" > "$ROOT/hook/sitecustomize.py"
  cat > "$ROOT/env.sh" <<EOF
# Written by build_tools/tf_gpu_env.sh install; source from the repository root.
export TFGPU_ROOT="$ROOT"
export PYTHONPATH="$ROOT/hook:$ROOT/site:\$PWD\${PYTHONPATH:+:\$PYTHONPATH}"
export PATH="$ROOT/site/bin:\$PATH"
# The links named as TF asks (build_tools/tf_gpu/cuda_libs.py), then the
# folders they point into (their own dependencies and dlopen()s).
export LD_LIBRARY_PATH="$(cat "$ROOT/cudalib/LD_LIBRARY_PATH")\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
# TF 2.21 ships SASS up to sm_89 and PTX for sm_90: the driver compiles its
# kernels for the H100 at first use; keep them cached across processes.
export CUDA_CACHE_PATH="$ROOT/nvcache" CUDA_CACHE_MAXSIZE=4294967296
export XLA_FLAGS="--xla_gpu_cuda_data_dir=$cuda_home\${XLA_FLAGS:+ \$XLA_FLAGS}"
export TF_CPP_MIN_LOG_LEVEL=\${TF_CPP_MIN_LOG_LEVEL:-1}
export PYTHON="$PY"
EOF
}

build_ops() {
  # shellcheck disable=SC1091
  . "$ROOT/env.sh"
  cd "$here"
  rm -f lightseq_tf/_lightseq_ops*.so
  # The machine's own toolkit (CUDA 13 there; build.py would otherwise look
  # for TF's CUDA 12 first). CI's CUDA 12.4 build is what `use-so` runs.
  LIGHTSEQ_TF_CUDA=1 LIGHTSEQ_TF_CUDA_ARCHS="${LIGHTSEQ_TF_CUDA_ARCHS:-90}" \
    LIGHTSEQ_TF_CUDA_HOME="${LIGHTSEQ_TF_CUDA_HOME:-$(machine_cuda)}" \
    LIGHTSEQ_TF_JOBS="${LIGHTSEQ_TF_JOBS:-$(nproc)}" "$PY" -m build_tools.build --inplace
  "$PY" "$here/build_tools/tf_gpu/cuda_libs.py" --check-ops || [ "${TFGPU_DRY_RUN:-0}" = 1 ]
}

use_so() {
  local dir="${1:-$ROOT/ci_so}"
  compgen -G "$dir/_lightseq_ops*.so" >/dev/null || die "no _lightseq_ops*.so in $dir (stage --ci-so)"
  # shellcheck disable=SC1091
  . "$ROOT/env.sh"
  cd "$here"
  rm -f lightseq_tf/_lightseq_ops*.so
  cp "$dir"/_lightseq_ops*.so "$dir/_build_info.py" lightseq_tf/
  log "using $(ls "$dir"/_lightseq_ops*.so): $(grep -h VERSION "$dir/_build_info.py" | tr '\n' ' ')"
  "$PY" "$here/build_tools/tf_gpu/cuda_libs.py" --check-ops || [ "${TFGPU_DRY_RUN:-0}" = 1 ]
}

cmd="${1:-}"
shift || true
case "$cmd" in
  stage) stage "$@" ;;
  verify) verify ;;
  calls) print_calls ;;
  receive) receive ;;
  install) install ;;
  build) build_ops ;;
  use-so) use_so "$@" ;;
  *) sed -n '2,38p' "$0"; exit 2 ;;
esac
