#!/usr/bin/env bash
# Builds the corpora of the shipped eval sets (the corpus folders are gitignored):
# - eval/sqlite/corpus/: 37 HTML pages of the SQLite documentation, as shipped by Debian's sqlite3-doc package
#   (installed under /usr/share/doc/sqlite3/, public domain);
# - eval/debian-reference/corpus/: the Debian Reference PDF (261 pages) of Debian's debian-reference-en package
#   (GPL-2+);
# - eval/gnuplot/corpus/: the gnuplot 5.4 manual PDF (311 pages) of Debian's gnuplot-doc package (gnuplot license);
# - eval/r-manuals/corpus/: three PDF manuals of R 4.2.2 (R-admin, R-data, R-FAQ: 178 pages) of Debian's r-doc-pdf
#   package (R-admin and R-data: verbatim copies permitted with the notice kept; R-FAQ: GPL-2+).
# The questions in eval/*/questions.jsonl were written and verified against these files.
#
# Idempotent: installs the packages only when missing, copies only files that changed, and removes any
# other file from the corpus folders (`rag eval` ingests the whole folder, so it must hold exactly these).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SRC="/usr/share/doc/sqlite3"
DEST="eval/sqlite/corpus"
# upstream version the questions were verified against (Debian 12: 3.40.1-2+deb12u2)
VERIFIED_VERSION="3.40.1"

PAGES=(
  atomiccommit.html
  autoinc.html
  cli.html
  datatype3.html
  expridx.html
  faq.html
  floatingpoint.html
  foreignkeys.html
  fts5.html
  gencol.html
  howtocorrupt.html
  inmemorydb.html
  isolation.html
  json1.html
  lang_conflict.html
  lang_corefunc.html
  lang_datefunc.html
  lang_mathfunc.html
  lang_savepoint.html
  lang_transaction.html
  lang_vacuum.html
  limits.html
  lockingv3.html
  nulls.html
  pragma.html
  queryplanner.html
  quirks.html
  rowidtable.html
  rowvalue.html
  rtree.html
  sharedcache.html
  stricttables.html
  tempfiles.html
  uri.html
  wal.html
  whentouse.html
  withoutrowid.html
)

log() { echo "[build_eval_corpus] $*" >&2; }

if ! dpkg -s sqlite3-doc >/dev/null 2>&1 || ! dpkg -s debian-reference-en >/dev/null 2>&1 \
  || ! dpkg -s gnuplot-doc >/dev/null 2>&1 || ! dpkg -s r-doc-pdf >/dev/null 2>&1; then
  log "installing sqlite3-doc, debian-reference-en, gnuplot-doc and r-doc-pdf"
  bash scripts/apt-install.sh scripts/apt-packages-test.txt
fi

version="$(dpkg-query -W -f='${Version}' sqlite3-doc)"
if [[ "${version%%-*}" != "$VERIFIED_VERSION" ]]; then
  log "warning: sqlite3-doc is $version, the questions were verified against $VERIFIED_VERSION;"
  log "         run .venv/bin/python scripts/check_eval_set.py to see which answers no longer match"
fi

missing=()
for page in "${PAGES[@]}"; do
  [[ -s "$SRC/$page" ]] || missing+=("$SRC/$page")
done
if ((${#missing[@]})); then
  log "missing pages in sqlite3-doc $version: ${missing[*]}"
  exit 1
fi

mkdir -p "$DEST"
copied=0
for page in "${PAGES[@]}"; do
  if ! cmp -s "$SRC/$page" "$DEST/$page"; then
    cp "$SRC/$page" "$DEST/$page.tmp"
    mv "$DEST/$page.tmp" "$DEST/$page"
    copied=$((copied + 1))
  fi
done

# anything else in the folder (an old page list, a stray file) would be ingested by `rag eval`
shopt -s nullglob dotglob
for path in "$DEST"/*; do
  name="$(basename "$path")"
  keep=0
  for page in "${PAGES[@]}"; do [[ "$name" == "$page" ]] && keep=1 && break; done
  if ((!keep)); then
    log "removing $path (not in the page list)"
    rm -rf -- "$path"
  fi
done

log "corpus ready: ${#PAGES[@]} pages in $ROOT/$DEST ($copied copied, sqlite3-doc $version)"

# --- the PDF corpora ---
# copy_pdfs PACKAGE VERIFIED_VERSION DEST_DIR SET_NAME SOURCE...
# Copies the SOURCE files of PACKAGE into DEST_DIR and removes every other file from it.
copy_pdfs() {
  local package="$1" verified="$2" dest="$3" set_name="$4"
  shift 4
  local src file version copied=0 path keep
  local files=()
  version="$(dpkg-query -W -f='${Version}' "$package")"
  if [[ "$version" != "$verified" ]]; then
    log "warning: $package is $version, the questions were verified against $verified;"
    log "         run .venv/bin/python scripts/check_eval_set.py --set $set_name (page numbers may have moved)"
  fi
  for src in "$@"; do
    if [[ ! -s "$src" ]]; then
      log "missing $src in $package $version"
      exit 1
    fi
    files+=("$(basename "$src")")
  done
  mkdir -p "$dest"
  for src in "$@"; do
    file="$(basename "$src")"
    if ! cmp -s "$src" "$dest/$file"; then
      cp "$src" "$dest/$file.tmp"
      mv "$dest/$file.tmp" "$dest/$file"
      copied=$((copied + 1))
    fi
  done
  for path in "$dest"/*; do
    keep=0
    for file in "${files[@]}"; do [[ "$(basename "$path")" == "$file" ]] && keep=1 && break; done
    if ((!keep)); then
      log "removing $path (not part of the corpus)"
      rm -rf -- "$path"
    fi
  done
  log "corpus ready: ${files[*]} in $ROOT/$dest ($copied copied, $package $version)"
}

# Debian package versions the questions and page numbers were verified against (Debian 12)
copy_pdfs debian-reference-en 2.100 eval/debian-reference/corpus debian-reference \
  /usr/share/debian-reference/debian-reference.en.pdf
copy_pdfs gnuplot-doc 5.4.4+dfsg1-2 eval/gnuplot/corpus gnuplot /usr/share/doc/gnuplot/gnuplot.pdf
copy_pdfs r-doc-pdf 4.2.2.20221110-2 eval/r-manuals/corpus r-manuals \
  /usr/share/R/doc/manual/R-admin.pdf /usr/share/R/doc/manual/R-data.pdf /usr/share/R/doc/manual/R-FAQ.pdf
