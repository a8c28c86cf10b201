#!/usr/bin/env bash
# Populates .corpus/ (gitignored) with real third-party documents for the converter tests.
#
#   (a) test files shipped in the sdists of ocrmypdf, pypdf and python-docx (from PyPI, via pip), and the
#       encrypted / malformed / hostile PDFs among them in .corpus/hostile/ (tests/app/api/test_bad_input.py)
#   (b) checks the Debian documentation/tools listed in scripts/apt-packages*.txt are installed
#   (c) generates a DOCX (pandoc, from the Python FAQ reST source) and a 2-frame TIFF (Pillow)
#   (d) real CSVs from the vega_datasets wheel
#
# Idempotent: every step is skipped when its output files already exist, so a second run takes well
# under a second. Set FORCE=1 to rebuild everything. PIP / PYTHON override the venv tools.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PIP="${PIP:-.venv/bin/pip}"
PYTHON="${PYTHON:-.venv/bin/python}"
CORPUS=".corpus"

OCRMYPDF_VERSION="17.13.0"
PYPDF_VERSION="7.1.1"
PYTHON_DOCX_VERSION="1.2.0"
VEGA_DATASETS_VERSION="0.9.0"

OCRMYPDF_FILES=(linn.pdf linn.txt linn.png c03-29.pdf multipage.pdf typewriter.png invalid.pdf)
PYPDF_FILES=(
  resources/encryption/r3-empty-password.pdf
  resources/encryption/r4-user-password.pdf
  resources/encryption/r6-empty-password.pdf
  resources/encryption/r6-user-password.pdf
  resources/encryption/unencrypted.pdf
  README.md
)
# Hostile PDFs (and one non-PDF): every one must give "indexed" or a 4xx with a reason, never a 5xx.
HOSTILE_PYPDF_FILES=(
  resources/encrypted-file.pdf                    # RC4, user password
  resources/crazyones-encrypted-256.pdf           # AES-256, user password
  resources/libreoffice-writer-password.pdf       # LibreOffice "open password"
  resources/encrypted_doc_no_id.pdf               # encrypted without a file /ID (opens with the empty password)
  resources/encryption/r2-user-password.pdf
  resources/encryption/r4-aes-user-password.pdf
  resources/encryption/r4-aes-v2-no-key-length.pdf   # AESV2 without /Length
  resources/encryption/r5-user-password.pdf
  resources/encryption/r6-both-passwords.pdf
  resources/encryption/r6-cleartext-metadata.pdf
  resources/issue-297.pdf                         # broken xref
  resources/outlines-with-invalid-destinations.pdf
  resources/lzw_decoder_table_overflow.bin        # an LZW stream that overflows its decoder table
)
HOSTILE_OCRMYPDF_FILES=(
  invalid.pdf              # a header followed by %%EOF
  enormous.pdf             # a 2160 x 2160 pt page
  hugemono.pdf             # a 35000 x 35000 JBIG2 image on an 8400 pt page
  jbig2_baddevicen.pdf     # a JBIG2 image with a bad DeviceN colour space
  livecycle.pdf            # claims dynamic XFA forms, no page content
  negzero.pdf              # a token qpdf rejects
  no_contents.pdf          # a page without /Contents
  docinfo_latin1_key.pdf   # a non-UTF-8 /DocumentInfo key
)
DOCX_FILES=(
  doc-coreprops.docx
  doc-no-coreprops.docx
  par-known-paragraphs.docx
  blk-paras-and-tables.docx
  txt-font-props.docx
)
VEGA_FILES=(seattle-weather.csv airports.csv)

DEBIAN_FILES=(
  /usr/share/R/doc/manual/R-intro.pdf
  /usr/share/R/doc/manual/R-exts.pdf
  /usr/share/doc/python3.11/html/faq/general.html
  /usr/share/doc/python3.11/html/_sources/faq/general.rst.txt
)
DEBIAN_TOOLS=(tesseract pandoc pdftotext)

log() { echo "[fetch_test_corpus] $*" >&2; }

[[ "${FORCE:-0}" == "1" ]] && rm -rf "$CORPUS"
mkdir -p "$CORPUS"/{sdist,ocrmypdf,pypdf,python-docx,vega,generated,hostile}

# all_present DIR FILE... -> 0 when every DIR/basename(FILE) exists and is non-empty
all_present() {
  local dir="$1"
  shift
  local f
  for f in "$@"; do
    [[ -s "$dir/$(basename "$f")" ]] || return 1
  done
}

# sdist_tarball NAME VERSION FILENAME -> downloads the sdist once, prints its path
sdist_tarball() {
  local name="$1" version="$2" filename="$3"
  local path="$CORPUS/sdist/$filename"
  if [[ ! -s "$path" ]]; then
    log "downloading sdist $name==$version"
    # pip prepares the sdist's metadata, which needs its build backend (hatchling, flit_core...):
    # with --no-build-isolation that fails unless the backend is in the venv, so let pip fetch it
    # into a throwaway isolated build environment (nothing is installed into the venv).
    "$PIP" download --quiet --no-deps --no-binary :all: -d "$CORPUS/sdist" "$name==$version" >&2
  fi
  [[ -s "$path" ]] || { log "expected $path after pip download"; exit 1; }
  echo "$path"
}

# extract_members TARBALL PREFIX DEST MEMBER... -> copies PREFIX/MEMBER to DEST/basename(MEMBER)
extract_members() {
  local tarball="$1" prefix="$2" dest="$3"
  shift 3
  local tmp
  tmp="$(mktemp -d)"
  local members=()
  local m
  for m in "$@"; do members+=("$prefix/$m"); done
  tar -xzf "$tarball" -C "$tmp" "${members[@]}"
  for m in "$@"; do cp "$tmp/$prefix/$m" "$dest/$(basename "$m")"; done
  rm -rf "$tmp"
}

# (a) sdists --------------------------------------------------------------------------------------
if ! all_present "$CORPUS/ocrmypdf" "${OCRMYPDF_FILES[@]}"; then
  tarball="$(sdist_tarball ocrmypdf "$OCRMYPDF_VERSION" "ocrmypdf-$OCRMYPDF_VERSION.tar.gz")"
  extract_members "$tarball" "ocrmypdf-$OCRMYPDF_VERSION/tests/resources" "$CORPUS/ocrmypdf" "${OCRMYPDF_FILES[@]}"
fi

if ! all_present "$CORPUS/pypdf" "${PYPDF_FILES[@]}"; then
  tarball="$(sdist_tarball pypdf "$PYPDF_VERSION" "pypdf-$PYPDF_VERSION.tar.gz")"
  extract_members "$tarball" "pypdf-$PYPDF_VERSION" "$CORPUS/pypdf" "${PYPDF_FILES[@]}"
fi

if ! all_present "$CORPUS/hostile" "${HOSTILE_PYPDF_FILES[@]}"; then
  tarball="$(sdist_tarball pypdf "$PYPDF_VERSION" "pypdf-$PYPDF_VERSION.tar.gz")"
  extract_members "$tarball" "pypdf-$PYPDF_VERSION" "$CORPUS/hostile" "${HOSTILE_PYPDF_FILES[@]}"
fi

if ! all_present "$CORPUS/hostile" "${HOSTILE_OCRMYPDF_FILES[@]}"; then
  tarball="$(sdist_tarball ocrmypdf "$OCRMYPDF_VERSION" "ocrmypdf-$OCRMYPDF_VERSION.tar.gz")"
  extract_members "$tarball" "ocrmypdf-$OCRMYPDF_VERSION/tests/resources" "$CORPUS/hostile" "${HOSTILE_OCRMYPDF_FILES[@]}"
fi

if ! all_present "$CORPUS/python-docx" "${DOCX_FILES[@]}"; then
  tarball="$(sdist_tarball python-docx "$PYTHON_DOCX_VERSION" "python_docx-$PYTHON_DOCX_VERSION.tar.gz")"
  extract_members "$tarball" "python_docx-$PYTHON_DOCX_VERSION/features/steps/test_files" \
    "$CORPUS/python-docx" "${DOCX_FILES[@]}"
fi

# (d) CSVs from the vega_datasets wheel -----------------------------------------------------------
if ! all_present "$CORPUS/vega" "${VEGA_FILES[@]}"; then
  wheel="$CORPUS/sdist/vega_datasets-$VEGA_DATASETS_VERSION-py3-none-any.whl"
  if [[ ! -s "$wheel" ]]; then
    log "downloading wheel vega_datasets==$VEGA_DATASETS_VERSION"
    "$PIP" download --quiet --no-deps --only-binary :all: -d "$CORPUS/sdist" "vega_datasets==$VEGA_DATASETS_VERSION" >&2
  fi
  "$PYTHON" - "$wheel" "$CORPUS/vega" "${VEGA_FILES[@]}" <<'PY'
import sys
import zipfile
from pathlib import Path

wheel, dest, names = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
with zipfile.ZipFile(wheel) as zf:
    for name in names:
        (dest / name).write_bytes(zf.read(f"vega_datasets/_data/{name}"))
PY
fi

# (b) Debian packages -----------------------------------------------------------------------------
missing=()
for f in "${DEBIAN_FILES[@]}"; do [[ -s "$f" ]] || missing+=("$f"); done
for t in "${DEBIAN_TOOLS[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t (command)"); done

# (c) generated files -----------------------------------------------------------------------------
faq_docx="$CORPUS/generated/python-faq.docx"
if [[ ! -s "$faq_docx" ]] && command -v pandoc >/dev/null 2>&1 \
  && [[ -s /usr/share/doc/python3.11/html/_sources/faq/general.rst.txt ]]; then
  log "generating $faq_docx with pandoc"
  # SOURCE_DATE_EPOCH makes pandoc's dcterms:created reproducible (the Debian doc file's mtime).
  # Title and author are the real ones of that page (the reST source carries neither as metadata).
  SOURCE_DATE_EPOCH="$(stat -c %Y /usr/share/doc/python3.11/html/_sources/faq/general.rst.txt)" \
    pandoc --from rst --to docx \
    --metadata title="General Python FAQ" \
    --metadata author="Python Software Foundation" \
    --output "$faq_docx.tmp" /usr/share/doc/python3.11/html/_sources/faq/general.rst.txt
  mv "$faq_docx.tmp" "$faq_docx"
fi

tiff="$CORPUS/generated/typewriter-linn.tiff"
if [[ ! -s "$tiff" ]]; then
  log "generating $tiff with Pillow"
  "$PYTHON" - "$CORPUS/ocrmypdf/typewriter.png" "$CORPUS/ocrmypdf/linn.png" "$tiff" <<'PY'
import sys

from PIL import Image

first, second, out = sys.argv[1:4]
frames = [Image.open(p).convert("L") for p in (first, second)]
frames[0].save(out + ".tmp", format="TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw")
PY
  mv "$tiff.tmp" "$tiff"
fi

if ((${#missing[@]})); then
  log "missing Debian files/tools: ${missing[*]}"
  log "install them with: apt-get install -y --no-install-recommends \$(grep -hv '^#' scripts/apt-packages.txt scripts/apt-packages-test.txt)"
  exit 1
fi
log "corpus ready in $ROOT/$CORPUS"
