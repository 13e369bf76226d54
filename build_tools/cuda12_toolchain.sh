#!/usr/bin/env bash
# The CUDA 12.4 compiler toolchain (nvcc, headers, static runtime) from Debian
# trixie's non-free archive, unpacked into a private cache folder -- nothing is
# installed into the system -- laid out like any CUDA toolkit. Prints the
# folder to use as LIGHTSEQ_TF_CUDA_HOME (stdout: that line only):
#
#   export LIGHTSEQ_TF_CUDA_HOME="$(build_tools/cuda12_toolchain.sh)"
#
# Fetched once (1 GB of .deb, ~7 s here; unpacking ~35 s of CPU), then reused:
# the cache keeps the 161 MB the compiler needs, not the packages.
#   LIGHTSEQ_TF_TOOLCHAIN_CACHE  cache root (default ${XDG_CACHE_HOME:-~/.cache}/lightseq_tf)
#   LIGHTSEQ_TF_DEBIAN_MIRROR    Debian mirror URL (default: the one this machine's apt uses)
# Needs apt-get, dpkg-deb and Debian's archive keyring (build_tools/debian_trixie.sh,
# which fetches the packages without installing anything).
set -euo pipefail

# Exact versions: the toolkit whose nvcc and headers were checked together.
CUDA_VERSION=12.4.131
PACKAGES=(
  nvidia-cuda-toolkit=12.4.131~12.4.1-2   # nvcc, cicc, ptxas, fatbinary, cudafe++, nvlink, libdevice
  nvidia-cuda-dev=12.4.127~12.4.1-2       # headers, libcudart_static.a, link stubs (934 MB: static libs)
  libcub-dev=2.3.2-2 libthrust-dev=2.3.2-2 libcu++-dev=2.3.2-2   # CCCL headers (cub's radix sort)
)
LAYOUT=2  # bump when the files taken from the packages change: the cache is redone

cache="${LIGHTSEQ_TF_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lightseq_tf}"
home="$cache/cuda-$CUDA_VERSION"
stamp="$home/.complete"
log() { echo "cuda12_toolchain: $*" >&2; }

ready() { [ "$(cat "$stamp" 2>/dev/null)" = "${PACKAGES[*]} layout $LAYOUT" ] && "$home/bin/nvcc" --version >/dev/null 2>&1; }

if ready; then echo "$home"; exit 0; fi

mkdir -p "$cache"
exec 9>"$cache/.cuda-$CUDA_VERSION.lock"
flock 9  # one fetch at a time (two CI runs on one machine)
if ready; then echo "$home"; exit 0; fi

[ "$(uname -m)" = x86_64 ] || { log "x86-64 only; elsewhere point LIGHTSEQ_TF_CUDA_HOME at a CUDA 12 toolkit"; exit 1; }
command -v dpkg-deb >/dev/null || { log "needs dpkg-deb (Debian/Ubuntu); or point LIGHTSEQ_TF_CUDA_HOME at a CUDA 12 toolkit"; exit 1; }
# shellcheck source=build_tools/debian_trixie.sh
. "$(dirname "$0")/debian_trixie.sh"

t0=$SECONDS
work="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/root" "$work/home"
trixie_download "$work/debs" "${PACKAGES[@]}" || { log "or point LIGHTSEQ_TF_CUDA_HOME at a CUDA 12 toolkit"; exit 1; }
log "fetched $(du -sm "$work/debs" | cut -f1) MB in $((SECONDS - t0)) s"

# Only what compiling and linking need (the .debs' static libraries of
# cuBLAS, cuFFT, NPP, ... are 90 % of their size).
unpack() {  # deb, paths...
  local deb="$1"; shift
  dpkg-deb --fsys-tarfile "$work"/debs/"$deb"_*.deb | tar -x -C "$work/root" --wildcards "$@"
}
unpack nvidia-cuda-toolkit ./usr/lib/nvidia-cuda-toolkit/bin ./usr/lib/nvidia-cuda-toolkit/libdevice \
  ./usr/bin/ptxas ./usr/bin/fatbinary ./usr/bin/cudafe++ ./usr/bin/nvlink ./usr/bin/bin2c \
  ./usr/bin/cuobjdump
unpack nvidia-cuda-dev './usr/include/*' ./usr/lib/x86_64-linux-gnu/libcudart_static.a \
  ./usr/lib/x86_64-linux-gnu/libcudadevrt.a \
  './usr/lib/x86_64-linux-gnu/stubs/libcublas*.so' ./usr/lib/x86_64-linux-gnu/stubs/libcuda.so
for p in libcub-dev libthrust-dev libcu++-dev; do unpack $p ./usr/include; done
rm -f "$work"/debs/*.deb

# NVIDIA's toolkit layout (bin/, nvvm/libdevice, include/, lib64/), so that
# LIGHTSEQ_TF_CUDA_HOME works like any other toolkit root.
r="$work/root/usr" h="$work/home"
mv "$r/lib/nvidia-cuda-toolkit/bin" "$h/bin"
rm "$h/bin/nvcc.profile"  # the .deb's is a link to /etc/nvcc.profile
mv "$r"/bin/* "$h/bin/"
mkdir -p "$h/nvvm" && mv "$r/lib/nvidia-cuda-toolkit/libdevice" "$h/nvvm/libdevice"
mv "$r/include" "$h/include"
mv "$r/lib/x86_64-linux-gnu" "$h/lib64"
# nvcc reads nvcc.profile beside itself; $(_HERE_) keeps the folder relocatable.
# bin/ also holds Debian's gcc/g++ wrappers: the newest g++ nvcc 12.4 supports (<= 13).
cat > "$h/bin/nvcc.profile" <<'EOF'
TOP                = $(_HERE_)/..
NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice
PATH              += $(_HERE_):
INCLUDES          += "-I$(TOP)/include" $(_SPACE_)
LIBRARIES          =+ $(_SPACE_) "-L$(TOP)/lib64/stubs" "-L$(TOP)/lib64"
EOF
"$h/bin/nvcc" --version | tail -2 >&2
rm -rf "$home" && mv "$h" "$home"
echo "${PACKAGES[*]} layout $LAYOUT" > "$stamp"
log "$home: $(du -sm "$home" | cut -f1) MB, ready in $((SECONDS - t0)) s"
echo "$home"
