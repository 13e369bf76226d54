# Sourced by build_tools/cuda12_toolchain.sh and build_tools/tf_gpu_env.sh:
#
#   trixie_download DEST PACKAGE[=VERSION]...
#
# downloads .debs from Debian trixie (main contrib non-free: NVIDIA's CUDA 12.4
# packages) into DEST through a private apt state: trixie never enters the
# system's sources, lists or package database, and nothing is installed.
# Mirror: LIGHTSEQ_TF_DEBIAN_MIRROR, else the Debian mirror this machine's apt
# uses. Needs apt-get and Debian's archive keyring (debian-archive-keyring >=
# 2023.3 holds trixie's key). Returns non-zero, saying why on stderr, when it
# cannot.
trixie_download() {
  local dest="$1"; shift
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg mirror work rc
  command -v apt-get >/dev/null || { echo "trixie_download: needs apt-get (Debian/Ubuntu)" >&2; return 1; }
  [ -f "$keyring" ] || { echo "trixie_download: needs $keyring (package debian-archive-keyring)" >&2; return 1; }
  mirror="${LIGHTSEQ_TF_DEBIAN_MIRROR:-$(apt-get indextargets --format '$(REPO_URI)' \
    'Identifier: Packages' 'Origin: Debian' 'Label: Debian' 2>/dev/null | head -1)}"
  [ -n "$mirror" ] || {
    echo "trixie_download: no Debian mirror in this machine's apt sources; set LIGHTSEQ_TF_DEBIAN_MIRROR" >&2
    return 1
  }
  work="$(mktemp -d)"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$dest"
  echo "deb [signed-by=$keyring] $mirror trixie main contrib non-free" > "$work/sources.list"
  # status=/dev/null: nothing is installed, only downloaded.
  local apt=(-q -o Dir::Etc::sourcelist="$work/sources.list" -o Dir::Etc::sourceparts=-
             -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache"
             -o Dir::State::status=/dev/null -o APT::Sandbox::User="$(id -un)"
             -o Acquire::Languages=none -o APT::Architecture=amd64 -o APT::Architectures=amd64)
  apt-get "${apt[@]}" update >&2 && (cd "$dest" && apt-get "${apt[@]}" download "$@" >&2)
  rc=$?
  rm -rf "$work"
  return $rc
}
