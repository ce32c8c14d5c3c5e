#!/usr/bin/env bash
# Clang's thread-safety analysis over util/mutex.h accepts correct locking and
# rejects each kind of mistake the annotations are there to catch, so the
# -Werror=thread-safety of the clang build (meson.build) is a real check.
# usage: thread_safety_test.sh CLANG++ SOURCE_ROOT
set -euo pipefail
clang=$1 root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# compile NAME BODY: a class with a guarded counter and BODY as its members.
compile() {
  cat > "$work/$1.cc" <<CC
#include "util/mutex.h"
namespace pagerfs {
class Counter {
 public:
$2
 private:
  Mutex mu_;
  CondVar changed_;
  int value_ GUARDED_BY(mu_) = 0;
  void bump_locked() REQUIRES(mu_) { ++value_; }
};
}  // namespace pagerfs
CC
  "$clang" -std=c++20 -fsyntax-only -Wthread-safety -Werror=thread-safety -I"$root/src" "$work/$1.cc" \
    2> "$work/$1.err"
}
accepts() {
  compile "$1" "$2" || { cat "$work/$1.err" >&2; fail "$1: correct locking rejected"; }
  echo "ok: accepted $1"
}
rejects() {
  if compile "$1" "$2"; then fail "$1: the analysis accepted a locking mistake"; fi
  grep -q -- "$3" "$work/$1.err" || { cat "$work/$1.err" >&2; fail "$1: no '$3'"; }
  echo "ok: rejected $1"
}

accepts scoped_lock 'void add() { MutexLock lock(mu_); bump_locked(); changed_.notify_all(); }
  int get() { MutexLock lock(mu_); return value_; }'
accepts wait_with_predicate 'void wait_positive() {
    MutexLock lock(mu_);
    changed_.wait(mu_, [this]() REQUIRES(mu_) { return value_ > 0; });
    --value_;
  }'
rejects unguarded_read 'int get() { return value_; }' "requires holding mutex 'mu_'"
rejects unguarded_write 'void reset() { value_ = 0; }' "requires holding mutex 'mu_'"
rejects helper_without_lock 'void add() { bump_locked(); }' "requires holding mutex 'mu_'"
rejects after_the_scope 'void add() { { MutexLock lock(mu_); } ++value_; }' "requires holding mutex 'mu_'"
rejects wait_without_lock 'void wait() { changed_.wait(mu_); }' "requires holding mutex 'mu_'"
