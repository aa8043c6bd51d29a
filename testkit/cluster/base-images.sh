#!/usr/bin/env bash
# Build the test cluster's base images into its private dockerd (no registry can be pulled here),
# each only when missing:
#   local/pause:3.2                 the static pause binary (kubelet's pod infra container)
#   local/busybox                   Debian's busybox-static, for tiny test containers
#   cdp-local/python:3.11-bookworm  debootstrap --variant=minbase bookworm + Debian's python3,
#                                   python3-venv, ca-certificates; trusts this machine's
#                                   TLS-re-signing CAs (a fact of this machine only: test-only)
# The python rootfs tarball is cached in $CLUSTER_CACHE/images so a rebuild is an import.
# Needs the cluster's dockerd running (up.sh starts it first).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PYTHON_IMAGE="${CLUSTER_PYTHON_IMAGE:-cdp-local/python:3.11-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
tmp="$(mktemp -d /var/tmp/cluster-images.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

if ! have_image local/pause:3.2; then
  mkdir "$tmp/pause"
  cp "$BIN/pause" "$tmp/pause/pause"
  tar -C "$tmp/pause" -c . | docker import -c 'ENTRYPOINT ["/pause"]' - local/pause:3.2 >/dev/null
  log "imported local/pause:3.2"
fi

if ! have_image local/busybox; then
  d="$tmp/busybox"
  mkdir -p "$d/bin" "$d/etc" "$d/tmp" "$d/root" "$d/var/www"
  cp /bin/busybox "$d/bin/busybox"
  for a in $(/bin/busybox --list); do [[ "$a" == busybox ]] || ln -s busybox "$d/bin/$a"; done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$d/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$d/etc/group"
  chmod 1777 "$d/tmp"
  tar --numeric-owner -C "$d" -c . |
    docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - local/busybox:latest >/dev/null
  log "imported local/busybox"
fi

if ! have_image "$PYTHON_IMAGE"; then
  mkdir -p "$CACHE/images"
  tarball="$CACHE/images/python-3.11-bookworm.tar"
  if [[ ! -s "$tarball" ]]; then
    start=$SECONDS
    r="$tmp/rootfs"
    log "debootstrap bookworm (minbase + python3) from $MIRROR"
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
      bookworm "$r" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 || { tail -30 "$tmp/debootstrap.log"; die "debootstrap failed"; }
    # This machine's egress re-signs TLS: trust its CAs, and tell pip to use the system bundle.
    cp /usr/local/share/ca-certificates/*.crt "$r/usr/local/share/ca-certificates/" 2>/dev/null || true
    chroot "$r" update-ca-certificates >/dev/null 2>&1
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$r/etc/pip.conf"
    # Small, like Debian's slim images: no docs, man pages, locales (also for later apt installs).
    cat >"$r/etc/dpkg/dpkg.cfg.d/excludes" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    printf '%s\n' 'APT::Install-Recommends "false";' 'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' \
      >"$r/etc/apt/apt.conf.d/90slim"
    find "$r/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    rm -rf "$r"/usr/share/{man,info,lintian,linda}/* "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* \
      "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old "$r"/var/log/* "$r"/tmp/* \
      "$r"/etc/resolv.conf "$r"/etc/hostname
    tar --numeric-owner -C "$r" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    log "python rootfs built in $((SECONDS - start))s: $(du -h "$tarball" | cut -f1)"
  fi
  docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    -c 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    -c 'CMD ["python3"]' "$tarball" "$PYTHON_IMAGE" >/dev/null
  log "imported $PYTHON_IMAGE ($(docker image inspect -f '{{.Size}}' "$PYTHON_IMAGE" | numfmt --to=si)B)"
fi
