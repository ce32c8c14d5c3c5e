#!/usr/bin/env bash
# scripts/run end to end on a store of its own: it mounts in the foreground,
# the store's image is readable, and Ctrl-C (SIGINT) unmounts and exits 0.
# The store holds over a thousand blobs: enough to break any `ls | head`
# under pipefail, as an earlier scripts/run did.
set -euo pipefail

if [[ ! -e /dev/fuse ]]; then
  [[ -n "${PAGERFS_REQUIRE_FUSE:-}" ]] && { echo "/dev/fuse is required (PAGERFS_REQUIRE_FUSE)"; exit 1; }
  echo "no /dev/fuse: skipped"; exit 77
fi
root=${PAGERFS_SOURCE_ROOT:?}
work=$(mktemp -d /tmp/pagerfs-run-test-XXXXXX)
mnt="$work/mnt"
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  mountpoint -q "$mnt" && fusermount3 -u -z "$mnt"
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/tree" "$mnt"
for i in $(seq 1100); do echo "file $i" >"$work/tree/f$i"; done
"$PAGERFSCTL" pack --store "$work/store" --image t "$work/tree" >/dev/null

"$root/scripts/run" "$work/store" "$mnt" >"$work/run.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  mountpoint -q "$mnt" && break
  kill -0 "$pid" 2>/dev/null || { echo "scripts/run exited before mounting:"; cat "$work/run.log"; exit 1; }
  sleep 0.1
done
mountpoint -q "$mnt" || { echo "not mounted after 60 s:"; cat "$work/run.log"; exit 1; }

[[ "$(cat "$mnt/images/t/f777")" == "file 777" ]] || { echo "wrong content of images/t/f777"; exit 1; }
[[ "$(ls "$mnt/images/t" | wc -l)" -eq 1100 ]] || { echo "images/t does not list 1100 files"; exit 1; }

kill -INT "$pid"
status=0
wait "$pid" || status=$?
pid=""
[[ $status -eq 0 ]] || { echo "scripts/run exited $status after SIGINT:"; cat "$work/run.log"; exit 1; }
! mountpoint -q "$mnt" || { echo "still mounted after SIGINT"; exit 1; }
echo "scripts/run: mounted, served, unmounted on SIGINT"
