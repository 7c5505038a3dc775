#!/bin/bash
# Installs, with apt, every Debian 12 package meshdns needs to build, run and test.
# Safe to run again: packages already present are skipped. Services that the test peers
# ship (unbound, dnsmasq, kresd) are not started (policy-rc.d), the tests start their own.
set -euo pipefail
PKGS=(
  # build
  build-essential cmake pkg-config clang
  libuv1-dev libldns-dev libnl-3-dev libnl-route-3-dev libcurl4-openssl-dev libcjson-dev
  libcmocka-dev liburcu-dev libevent-dev liburing-dev
  # test peers and clients
  unbound dnsmasq knot-resolver knot-dnsutils bind9-dnsutils ldnsutils dnsperf
  iproute2 nftables procps psmisc curl openssl python3 python3-dnspython python3-yaml
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# Keep packaged daemons (unbound, dnsmasq, ...) from starting on install.
printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
$SUDO chmod +x /usr/sbin/policy-rc.d
trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
