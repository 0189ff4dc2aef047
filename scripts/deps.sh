#!/usr/bin/env bash
# deps.sh installs what Kappa needs on Debian 12 (run as root): the OCI
# runtimes, image tools for the tests, and crane. Idempotent.
set -euo pipefail

need_apt=()
for pkg in crun runc skopeo podman umoci iproute2 curl ca-certificates busybox-static; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
	echo "deps: installing ${need_apt[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo /root/go)/bin"
if ! command -v crane >/dev/null; then
	echo "deps: installing crane"
	GOFLAGS=-buildvcs=false go install github.com/google/go-containerregistry/cmd/crane@v0.20.6
fi

# podman in a container-less VM: keep rlimits within what root may set.
conf=/etc/containers/containers.conf
if ! grep -qs default_ulimits "$conf"; then
	mkdir -p /etc/containers
	printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n' >>"$conf"
fi

# crun refuses hybrid cgroup hosts when hugetlb sits on the v2 mount; a v1
# hugetlb hierarchy moves it off. Pure v2 and pure v1 hosts need nothing.
if [ -d /sys/fs/cgroup/unified ] && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null \
	&& ! mountpoint -q /sys/fs/cgroup/hugetlb; then
	echo "deps: mounting a v1 hugetlb hierarchy so crun works on this hybrid cgroup host"
	mkdir -p /sys/fs/cgroup/hugetlb 2>/dev/null || mount -o remount,rw /sys/fs/cgroup
	mkdir -p /sys/fs/cgroup/hugetlb
	mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb || echo "deps: could not mount hugetlb; Kappa will use runc"
fi
