#!/usr/bin/env bash
# build-criu.sh builds CRIU from Debian's source (sid 4.2.1 by default, or
# trixie 4.1.1) on Debian 12 and installs the single binary to
# /opt/criu/sbin/criu (and /opt/criu/sbin/criu-VERSION). Idempotent. `make test`
# and `make bench` run it: SnapStart snapshots need it (docs/snapshot-restore.md).
# When sid has moved past the default version, the version sid has (4.2 or
# later) is built instead, unless CRIU_VERSION was set.
#
# 4.2.1 is the default: 4.1.1 passes `criu check` on kernel 6.18 but cannot dump
# a process holding a TCP socket (getsockopt SO_PASSCRED/SO_PASSSEC -> EOPNOTSUPP
# on non-unix sockets since Linux 6.16); 4.2.1 only queries those on AF_UNIX/NETLINK.
#
#   ./build-criu.sh                         (sid 4.2.1)
#   CRIU_VERSION=4.1.1 ./build-criu.sh      (trixie 4.1.1)
#   FORCE=1 ./build-criu.sh                 (rebuild even if installed)
#
# The build leaves out GnuTLS (TLS for CRIU's page server) and nftables
# (network locking; Kappa's snapshots skip it): each restore executes criu,
# and those two pull in 14 of its 22 shared libraries. `criu --version`
# takes 1.5 ms instead of 4.0-4.4 ms, and restores got 3-9 ms faster
# (docs/snapshot-restore.md). FLAVOR names the build, so that an older
# build of the same version is replaced.
set -euo pipefail

[[ -n "${CRIU_VERSION:-}" ]] && CRIU_PINNED=1
CRIU_VERSION="${CRIU_VERSION:-4.2.1}"
PREFIX="${PREFIX:-/opt/criu}"
WORK="${WORK:-/tmp/kappa-criu-build}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
POOL="$MIRROR/pool/main/c/criu"
case "$CRIU_VERSION" in
  4.1.1) SUITE=trixie ;;
  4.2.1) SUITE=sid ;;
  *) SUITE="${SUITE:?set SUITE for CRIU_VERSION=$CRIU_VERSION}" ;;
esac

FLAVOR="lean-1"
log() { echo "[build-criu] $*" >&2; }

# installed VERSION: is that version, of this FLAVOR, at $PREFIX/sbin/criu?
installed() {
  [[ -x "$PREFIX/sbin/criu" && "$(cat "$PREFIX/sbin/criu.build" 2>/dev/null)" == "$1 $FLAVOR" ]] &&
    "$PREFIX/sbin/criu" --version 2>/dev/null | grep -q "Version: $1\$"
}

# Already installed with the right version?  Then nothing to do.
if [[ -z "${FORCE:-}" ]] && installed "$CRIU_VERSION"; then
  log "criu $CRIU_VERSION ($FLAVOR) already at $PREFIX/sbin/criu"; exit 0
fi

# ---- build dependencies (all from bookworm) ----
DEPS=(build-essential pkg-config curl xz-utils ca-certificates gpgv debian-archive-keyring
      libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
      python3-protobuf libnl-3-dev libnl-route-3-dev libnet1-dev libcap-dev
      libbsd-dev libaio-dev uuid-dev iptables)
missing=()
for p in "${DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ---- fetch and verify source ----
mkdir -p "$WORK"; cd "$WORK"
ORIG="criu_${CRIU_VERSION}.orig.tar.xz"

# Expected sha256 of the orig tarball, from the suite's Sources index, whose
# hash is checked against the suite's InRelease, whose signature is checked with
# gpgv against debian-archive-keyring.  (The mirror here does not serve
# criu_4.1.1-1.dsc nor the .debian.tar.xz files -> 404; the sid .dsc, when
# served, is cross-checked too.)
curl -fsS -o "InRelease.$SUITE" "$MIRROR/dists/$SUITE/InRelease"
curl -fsS -o "Sources.$SUITE.xz" "$MIRROR/dists/$SUITE/main/source/Sources.xz"
kr=(); for k in /usr/share/keyrings/debian-archive-keyring.gpg /etc/apt/trusted.gpg.d/debian-archive-*.asc /etc/apt/trusted.gpg.d/debian-archive-*.gpg; do [[ -f $k ]] && kr+=(--keyring "$k"); done
if ((${#kr[@]})) && gpgv "${kr[@]}" "InRelease.$SUITE" >/dev/null 2>&1; then
  log "$SUITE InRelease signature OK"
elif [[ -n "${ALLOW_UNSIGNED:-}" ]]; then
  log "WARNING: could not verify $SUITE InRelease signature (ALLOW_UNSIGNED set)"
else
  log "cannot verify $SUITE InRelease signature (set ALLOW_UNSIGNED=1 to skip)"; exit 1
fi
want=$(awk '/^SHA256:/{s=1;next} /^[^ ]/{s=0} s&&$3=="main/source/Sources.xz"{print $1}' "InRelease.$SUITE")
got=$(sha256sum "Sources.$SUITE.xz" | cut -d' ' -f1)
[[ -n "$want" && "$want" == "$got" ]] || { log "Sources.xz hash mismatch ($want vs $got)"; exit 1; }
expected=$(xz -dc "Sources.$SUITE.xz" | awk -v f="$ORIG" '
    /^Package: /{pkg=$2} /^Checksums-Sha256:/{s=1;next} /^[^ ]/{s=0}
    s&&pkg=="criu"&&$3==f{print $1}')
if [[ -z "$expected" && -z "${CRIU_PINNED:-}" && "$SUITE" == sid ]]; then
  # sid moved on: take the version it has now (4.2 or later).
  now=$(xz -dc "Sources.$SUITE.xz" | awk '/^Package: /{pkg=$2} pkg=="criu"&&/^Version: /{print $2; exit}')
  now=${now%-*}
  if [[ -n "$now" && "$(printf '%s\n4.2\n' "$now" | sort -V | head -1)" == 4.2 ]]; then
    log "sid has criu $now, not $CRIU_VERSION: building $now"
    if [[ -z "${FORCE:-}" ]] && installed "$now"; then
      log "criu $now ($FLAVOR) already at $PREFIX/sbin/criu"; exit 0
    fi
    CRIU_VERSION=$now; ORIG="criu_${CRIU_VERSION}.orig.tar.xz"
    expected=$(xz -dc "Sources.$SUITE.xz" | awk -v f="$ORIG" '
        /^Package: /{pkg=$2} /^Checksums-Sha256:/{s=1;next} /^[^ ]/{s=0}
        s&&pkg=="criu"&&$3==f{print $1}')
  fi
fi
[[ -n "$expected" ]] || { log "no sha256 for $ORIG in $SUITE Sources (version moved on?)"; exit 1; }
log "sha256 from $SUITE Sources: $expected"
if curl -fsS -o "criu_${CRIU_VERSION}-1.dsc" "$POOL/criu_${CRIU_VERSION}-1.dsc" 2>/dev/null; then
  dsc=$(awk -v f="$ORIG" '/^Checksums-Sha256:/{s=1;next} /^[^ ]/{s=0} s&&$3==f{print $1}' "criu_${CRIU_VERSION}-1.dsc")
  [[ "$dsc" == "$expected" ]] || { log ".dsc sha256 $dsc differs from Sources"; exit 1; }
  log ".dsc agrees"
fi

if [[ ! -f "$ORIG" ]] || [[ "$(sha256sum "$ORIG" | cut -d' ' -f1)" != "$expected" ]]; then
  curl -fsS -o "$ORIG" "$POOL/$ORIG"
fi
echo "$expected  $ORIG" | sha256sum -c - >&2

# ---- build ----
# criu caches its kernel-feature probe (criu.kdat, ~80 ms..1 s per run, mostly
# netns create/destroy) in RUNDIR only if that is a tmpfs.  /run is not a tmpfs
# on this VM, so fall back to /dev/shm.
if [[ -z "${RUNDIR:-}" ]]; then
  if [[ "$(stat -f -c %T /run 2>/dev/null)" == tmpfs ]]; then RUNDIR=/run; else RUNDIR=/dev/shm; fi
fi
log "kdat cache dir (RUNDIR): $RUNDIR"
SRC="$WORK/criu-$CRIU_VERSION"
rm -rf "$SRC"; tar xf "$ORIG"
cd "$SRC"
log "building criu $CRIU_VERSION (make -j2 criu)"
start=$(date +%s)
# Only the criu binary: no docs, no libcriu/crit/python, no amdgpu/cuda plugins;
# no GnuTLS (NO_GNUTLS) and no nftables (a pkg-config that does not find it,
# should libnftables-dev be installed).
printf '#!/bin/sh\ncase " $* " in *" libnftables "*) exit 1;; esac\nexec pkg-config "$@"\n' > "$WORK/pkg-config"
chmod +x "$WORK/pkg-config"
make -j2 criu NETWORK_LOCK_DEFAULT=NETWORK_LOCK_IPTABLES RUNDIR="$RUNDIR" NO_GNUTLS=1 PKG_CONFIG="$WORK/pkg-config" \
  > "$WORK/build-$CRIU_VERSION.log" 2>&1 || { tail -40 "$WORK/build-$CRIU_VERSION.log"; exit 1; }
end=$(date +%s)
log "build took $((end - start)) s (log: $WORK/build-$CRIU_VERSION.log)"

install -D -m 0755 criu/criu "$PREFIX/sbin/criu-$CRIU_VERSION"
install -D -m 0755 criu/criu "$PREFIX/sbin/criu"
echo "$CRIU_VERSION $FLAVOR" > "$PREFIX/sbin/criu.build"
"$PREFIX/sbin/criu" --version
if ldd "$PREFIX/sbin/criu" | grep -Eq 'libgnutls|libnftables'; then
  log "criu still links GnuTLS or nftables"; exit 1
fi
log "installed $PREFIX/sbin/criu"
