#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make install` as a packager runs it: meson install into a DESTDIR puts the
# binaries, libatel (.so, .a, atel.h, libatel.pc), the SQLite extension
# atel_sqlite.so (<libdir>/atel/), the man pages ateld(8),
# atel(1), libatel(3), the systemd unit and bash completion in place; an agent
# then builds with `pkg-config --cflags --libs libatel` alone (sysroot = the
# DESTDIR) and runs against the installed library.
# Exit 0 pass, 1 fail, 77 skip (pkg-config or cc missing).
set -uo pipefail
build=${ATEL_BUILD_ROOT:?ATEL_BUILD_ROOT not set}
command -v pkg-config >/dev/null || { echo "SKIP: pkg-config is not installed"; exit 77; }
command -v cc >/dev/null || { echo "SKIP: no C compiler"; exit 77; }
tmp=$(mktemp -d /tmp/atel-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
fail=0
if ! meson install -C "$build" --destdir "$root" --no-rebuild >"$tmp/install.log" 2>&1; then
  echo "FAIL: meson install:"; tail -20 "$tmp/install.log"; exit 1
fi
for want in bin/ateld bin/atel include/atel.h /libatel.so /libatel.so.0 /libatel.a pkgconfig/libatel.pc \
            man1/atel.1 man8/ateld.8 man3/libatel.3 systemd/system/ateld.service completions/atel \
            /atel/atel_sqlite.so; do
  if ! find "$root" -path "*$want" | grep -q .; then echo "FAIL: not installed: $want"; fail=1; fi
done
pc=$(find "$root" -name libatel.pc | head -1)
libdir=$(dirname "$(find "$root" -name 'libatel.so.0' | head -1)")
bindir=$(dirname "$(find "$root" -path '*bin/atel' | head -1)")
# the man pages say what --help says
for verb in query load traces; do
  grep -q "^.SH ATEL ${verb^^}" "$(find "$root" -name atel.1)" || { echo "FAIL: atel.1 lacks the $verb section"; fail=1; }
done
grep -q -- "--allow-loss" "$(find "$root" -name atel.1)" || { echo "FAIL: atel.1 is not atel's --help"; fail=1; }
grep -q -- "--check-config" "$(find "$root" -name ateld.8)" || { echo "FAIL: ateld.8 is not ateld's --help"; fail=1; }
grep -q "atel_add" "$(find "$root" -name libatel.3)" || { echo "FAIL: libatel.3 lacks atel_add"; fail=1; }
unit=$(find "$root" -name ateld.service)
grep -q "^ExecStart=$(sed -n 's/^prefix=//p' "$pc")/bin/ateld " "$unit" || { echo "FAIL: unit's ExecStart is not the installed ateld: $(grep ExecStart "$unit")"; fail=1; }
bash -n "$(find "$root" -path '*completions/atel')" || { echo "FAIL: bash completion does not parse"; fail=1; }
( source "$(find "$root" -path '*completions/atel')" && COMP_WORDS=(atel lo) COMP_CWORD=1 && _atel && [ "${COMPREPLY[*]}" = load ] ) \
  || { echo "FAIL: completion of 'atel lo' is not 'load'"; fail=1; }

cat >"$tmp/agent.c" <<'C'
#include <atel.h>
#include <stdio.h>
int main(void) {
    atel_init(NULL);                       /* no sidecar on this segment: counted no-ops */
    atel_series done = atel_counter("jobs_done_total", "queue", "build", NULL);
    atel_add(done, 1);
    atel_stats st;
    atel_stats_get(&st);
    printf("attached=%d no_sidecar=%llu error=%s\n", atel_attached(), (unsigned long long)st.drops_no_sidecar,
           atel_last_error());
    atel_shutdown();
    return 0;
}
C
# a sanitizer build's libatel needs the agent built with the same runtime first
san=""
needed=$(readelf -d "$libdir/libatel.so.0" 2>/dev/null)
case "$needed" in *libasan*) san="-fsanitize=address,undefined" ;; *libtsan*) san="-fsanitize=thread" ;; esac
flags=$(PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$root pkg-config --cflags --libs libatel) \
  || { echo "FAIL: pkg-config libatel"; exit 1; }
case "$flags" in *"$root"*) ;; *) echo "FAIL: pkg-config flags do not point into the install: $flags"; fail=1 ;; esac
# shellcheck disable=SC2086
if ! cc $san "$tmp/agent.c" $flags -o "$tmp/agent" 2>"$tmp/cc.err"; then
  echo "FAIL: cc agent.c \$(pkg-config --cflags --libs libatel): $(cat "$tmp/cc.err")"; exit 1
fi
out=$(env -u LD_LIBRARY_PATH LD_LIBRARY_PATH="$libdir" ATEL_SHM="atel-install-test-$$" "$tmp/agent") \
  || { echo "FAIL: the agent did not run: $out"; fail=1; }
ldd_out=$(LD_LIBRARY_PATH="$libdir" ldd "$tmp/agent" | grep libatel)
case "$ldd_out" in *"$libdir"*) ;; *) echo "FAIL: the agent did not load the installed libatel: $ldd_out"; fail=1 ;; esac
case "$out" in "attached=0 no_sidecar="[1-9]*"atel-install-test-"*) ;; *) echo "FAIL: agent output: $out"; fail=1 ;; esac
LD_LIBRARY_PATH="$libdir" "$bindir/atel" --version >/dev/null || { echo "FAIL: installed atel does not run"; fail=1; }
[ $fail = 0 ] && echo "install into DESTDIR and an agent through pkg-config: ok"
exit $fail
