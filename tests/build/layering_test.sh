#!/usr/bin/env bash
# The layering check (scripts/check-layering) passes on the tree as it is and
# fails on each kind of planted back-edge, naming the file and the rule.
# usage: layering_test.sh CHECKER SOURCE_ROOT RULE...  (the rules of src/meson.build)
set -euo pipefail
checker=$1 root=$2
shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

python3 "$checker" "$root" "$@" || fail "the tree as it is breaks the layering"

# plant FILE LINE EXPECTED: a copy of the tree with LINE appended to FILE must
# fail the check with EXPECTED in its message.
plant() {
  local file=$1 line=$2 expected=$3
  rm -rf "$work/tree" && mkdir "$work/tree"
  cp -r "$root/src" "$root/include" "$work/tree/"
  mkdir -p "$(dirname "$work/tree/$file")"
  echo "$line" >> "$work/tree/$file"
  if python3 "$checker" "$work/tree" "$@" 2> "$work/err"; then
    fail "a planted '$line' in $file passed the check"
  fi
  grep -qF -- "$expected" "$work/err" || { cat "$work/err" >&2; fail "no '$expected' for $file"; }
  echo "ok: $file: $line -> $expected"
}

plant src/util/units.cc '#include "pagerfs/pager/pager.h"' 'util may not depend on pager'
plant src/format/blob_reader.cc '#include "store/tree_scan.h"' 'format may not depend on store'
plant include/pagerfs/layers/layer.h '#include "pagerfs/fuse/daemon.h"' 'layers may not depend on fuse'
plant src/control/control_client.cc '#include "pagerfs/pager/pager.h"' 'control may not depend on pager'
plant include/pagerfs/store/store.h '#include "store/tree_scan.h"' 'a public header includes an internal one'
plant src/pager/pager.cc '#include "../fuse/filesystem.h"' 'name a header by its subsystem'
plant src/misc/stray.cc '// no subsystem' 'not inside a subsystem'
