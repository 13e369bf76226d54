# Sourced (bash). Debian trixie packages (main, contrib, non-free) fetched
# through a private apt state: the mirror this machine's apt uses
# (LIGHTSEQ_TF_DEBIAN_MIRROR overrides), trixie's index kept under the given
# folder; nothing is installed and the system's apt configuration, lists and
# package database are never touched.
#
#   trixie_download DEST PACKAGE[=VERSION]...   # .debs into DEST (DEST/.apt: the state)
#
# Needs apt-get and Debian's archive keyring (debian-archive-keyring >=
# 2023.3, which holds trixie's key: any Debian 12 or newer).

trixie_download() {
  local dest="$1"; shift
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg state="$dest/.apt"
  command -v apt-get >/dev/null || { echo "trixie_download: needs apt-get (Debian/Ubuntu)" >&2; return 1; }
  [ -f "$keyring" ] || { echo "trixie_download: needs $keyring (package debian-archive-keyring)" >&2; return 1; }
  local mirror="${LIGHTSEQ_TF_DEBIAN_MIRROR:-$(apt-get indextargets --format '$(REPO_URI)' \
    'Identifier: Packages' 'Origin: Debian' 'Label: Debian' 2>/dev/null | head -1)}"
  [ -n "$mirror" ] || { echo "trixie_download: no Debian mirror in this machine's apt sources; set LIGHTSEQ_TF_DEBIAN_MIRROR" >&2; return 1; }
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
  echo "deb [signed-by=$keyring] $mirror trixie main contrib non-free" > "$state/sources.list"
  # status=/dev/null: no installed packages are seen (nothing is installed,
  # only downloaded); the sandbox user is us, so apt can write into $dest.
  local apt=(-q -o Dir::Etc::sourcelist="$state/sources.list" -o Dir::Etc::sourceparts=-
             -o Dir::State::Lists="$state/lists" -o Dir::Cache="$state/cache"
             -o Dir::State::status=/dev/null -o APT::Sandbox::User="$(id -un)"
             -o Acquire::Languages=none)
  apt-get "${apt[@]}" update >&2 && (cd "$dest" && apt-get "${apt[@]}" download "$@" >&2)
}
