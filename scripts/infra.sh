#!/usr/bin/env bash
# shellcheck disable=SC2034  # DEF_* variables are read indirectly, see val()
# Local infrastructure for development, tests and CI: ClickHouse, PostgreSQL
# and Kafka (KRaft), each installed on demand and run as a plain background
# process on 127.0.0.1 with its data, config and logs under $INFRA_DIR.
#
#   scripts/infra.sh start  [component...]   install if missing, start, wait until ready
#   scripts/infra.sh stop   [component...]   stop what this script started
#   scripts/infra.sh status [component...]   one line per component (exit 3 if one is down)
#   scripts/infra.sh env                     export lines: eval "$(scripts/infra.sh env)"
#   scripts/infra.sh pause  component...     SIGSTOP the server and its child processes (a hung server)
#   scripts/infra.sh resume component...     SIGCONT them again
#   scripts/infra.sh crash  component...     stop without any shutdown work (SIGKILL; PostgreSQL:
#                                            pg_ctl stop -m immediate, so the next start recovers)
#
# Components: clickhouse, postgres, kafka (default: all; or INFRA_ONLY="clickhouse postgres").
# A component is left alone (treated as external) when its variable points at a
# server other than ours: CLICKHOUSE_HOST, POSTGRES_QUERY_HOST(+_PORT), KAFKA_BROKER.
# Pointing them at our own address (what `env` prints) keeps it managed, so
# `eval "$(scripts/infra.sh env)"; scripts/infra.sh start` still starts everything.
#
# Why no system services (systemd, /etc/init.d): containers and CI machines of
# this project have no init system, and the project must not depend on (or
# disturb) a machine-wide cluster. Everything here is per checkout.
#
# Other knobs: INFRA_DIR (default <repo>/.cache/infra), INFRA_TIMEOUT (seconds
# to wait for each server, default 120), KAFKA_HEAP_OPTS (default -Xmx512m -Xms256m).
#
# A second, private instance (e.g. for fault tests, which pause and stop servers
# while other test runs use the first one): another INFRA_DIR and every port
# moved by INFRA_PORT_OFFSET (0..40000). `env` then also exports both knobs, so
# later calls (the fault tests run this script) reach the same instance:
#   export INFRA_PORT_OFFSET=100 INFRA_DIR=/tmp/infra-faults
#   scripts/infra.sh start && eval "$(scripts/infra.sh env)"
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
INFRA_DIR_GIVEN=${INFRA_DIR:+1}   # exported again by `env` when set (a second instance)
INFRA_DIR=$(realpath -m -- "${INFRA_DIR:-$REPO_ROOT/.cache/infra}")
INFRA_TIMEOUT=${INFRA_TIMEOUT:-120}
export DEBIAN_FRONTEND=noninteractive

ALL_COMPONENTS=(clickhouse postgres kafka)

# Fixed local ports, chosen away from the defaults (9000/8123/5432/9092) so a
# machine-wide server, if any, does not collide with ours. A second instance
# moves all of them by INFRA_PORT_OFFSET.
LOCAL_HOST=127.0.0.1
INFRA_PORT_OFFSET=${INFRA_PORT_OFFSET:-0}
if ! [[ $INFRA_PORT_OFFSET =~ ^[0-9]{1,5}$ ]] || ((INFRA_PORT_OFFSET > 40000)); then
  printf '[infra] ERROR: INFRA_PORT_OFFSET=%s: expected a number from 0 to 40000\n' "$INFRA_PORT_OFFSET" >&2
  exit 2
fi
CH_TCP_PORT=$((19000 + INFRA_PORT_OFFSET))
CH_HTTP_PORT=$((18123 + INFRA_PORT_OFFSET))
PG_PORT=$((15433 + INFRA_PORT_OFFSET))
KAFKA_PORT=$((19092 + INFRA_PORT_OFFSET))
KAFKA_CONTROLLER_PORT=$((19093 + INFRA_PORT_OFFSET))

# What the project reads (see service_kit/settings.py: empty means unset).
# The DEF_* names are read indirectly by val() (hence SC2034 is off).
DEF_CLICKHOUSE_HOST=$LOCAL_HOST:$CH_TCP_PORT
DEF_CLICKHOUSE_USER=default
DEF_CLICKHOUSE_PASSWORD=mypass
DEF_CLICKHOUSE_DB=events
DEF_KAFKA_BROKER=$LOCAL_HOST:$KAFKA_PORT
DEF_KAFKA_TOPIC='user-events'
DEF_KAFKA_GROUP=query-group
DEF_POSTGRES_QUERY_HOST=$LOCAL_HOST
DEF_POSTGRES_QUERY_PORT=$PG_PORT
DEF_POSTGRES_QUERY_USER=postgres
DEF_POSTGRES_QUERY_PASSWORD=postgres
DEF_POSTGRES_QUERY_DB=query_db
ENV_VARS=(CLICKHOUSE_HOST CLICKHOUSE_USER CLICKHOUSE_PASSWORD CLICKHOUSE_DB
          KAFKA_BROKER KAFKA_TOPIC KAFKA_GROUP
          POSTGRES_QUERY_HOST POSTGRES_QUERY_PORT POSTGRES_QUERY_USER
          POSTGRES_QUERY_PASSWORD POSTGRES_QUERY_DB)
KAFKA_TOPIC_PARTITIONS=${KAFKA_TOPIC_PARTITIONS:-3}

# The effective value of a project variable: the environment's when set and
# non-empty, else our default.
val() { local name=$1 def="DEF_$1"; local v=${!name:-}; printf '%s' "${v:-${!def}}"; }

CH_DIR=$INFRA_DIR/clickhouse
PG_DIR=$INFRA_DIR/postgres
KAFKA_DIR=$INFRA_DIR/kafka
KAFKA_POM=$SCRIPT_DIR/infra/kafka-pom.xml

# ---------------------------------------------------------------- helpers ---

# Messages go to stderr so that `env` output (stdout) stays eval-able.
log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

# Print the last lines of each existing log file, to explain a failure.
show_logs() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    printf '[infra] ---- last lines of %s ----\n' "$f" >&2
    tail -n 30 -- "$f" >&2 || true
  done
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# Is process $1 stopped by a signal (state T in /proc/<pid>/stat)?
is_paused() { [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == T ]]; }

# Is something accepting TCP connections on 127.0.0.1:$1?
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$LOCAL_HOST/$1" 2>/dev/null; }

# Write stdin to $1 only when the content differs, so running servers that
# watch their config (ClickHouse reloads users.xml) are not poked for nothing.
# Returns 0 when the file changed.
write_if_changed() {
  local dest=$1 tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cat >"$tmp"
  if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then rm -f "$tmp"; return 1; fi
  mv -f "$tmp" "$dest"
  return 0
}

# Is the process in pid file $1 alive and is it ours? The command line must
# contain $2 (a path unique to this INFRA_DIR), so a pid reused after a reboot
# or a server of another checkout is never mistaken for ours.
pid_ours() {
  local pidfile=$1 marker=$2 pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"
}

# Start "$@" detached from this shell: own session (setsid) so it survives the
# caller (a Makefile recipe, a CI step), stdin from /dev/null, output to a log,
# and fd 9 (our lock) closed so the server does not hold the lock forever.
# Writes the pid to $1. Without job control the background child is not a
# process-group leader, so setsid does not fork and $! is the server itself.
# The previous run's console log is kept as <log>.1, so a failure shows only
# this run's output.
launch() {
  local pidfile=$1 logfile=$2; shift 2
  if [[ -f $logfile ]]; then mv -f "$logfile" "$logfile.1"; fi
  setsid "$@" >>"$logfile" 2>&1 </dev/null 9>&- &
  echo $! >"$pidfile"
}

# Poll until "$check" succeeds, failing fast when the process dies and with
# the log tail after INFRA_TIMEOUT seconds. Args: name pidfile check logs...
wait_ready() {
  local name=$1 pidfile=$2 check=$3; shift 3
  local deadline=$((SECONDS + INFRA_TIMEOUT)) pid
  pid=$(<"$pidfile")
  # Liveness by pid only: right after launch the child may not have exec'd
  # the server yet, so its command line may not be the server's for a moment.
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_logs "$@"
      die "$name exited during start-up (logs above; all logs in ${pidfile%/*})"
    fi
    if "$check"; then return 0; fi
    if ((SECONDS >= deadline)); then
      show_logs "$@"
      die "$name not ready after ${INFRA_TIMEOUT}s (set INFRA_TIMEOUT to wait longer; logs above)"
    fi
    sleep 0.5
  done
}

# SIGTERM, wait up to 30 s for a clean shutdown, then SIGKILL.
stop_pid() {
  local name=$1 pidfile=$2 marker=$3 pid i
  if ! pid_ours "$pidfile" "$marker"; then
    log "$name: not running"
    rm -f "$pidfile"
    return 0
  fi
  pid=$(<"$pidfile")
  log "$name: stopping (pid $pid)"
  # shellcheck disable=SC2046  # a paused server (scripts/infra.sh pause) must run to stop
  kill -CONT $(process_tree "$pid") 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still alive after 30s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$pidfile"
  log "$name: stopped"
}

# apt-get install, once per run with an update first. Needs root (or
# password-less sudo). A policy-rc.d that forbids service starts is put in
# place for the duration (unless the image already has one) because the
# packages' maintainer scripts would otherwise try to start the machine-wide
# clickhouse-server / PostgreSQL "main" cluster, which we do not want.
APT_UPDATED=0
apt_install() {
  local sudo=() log_file=$INFRA_DIR/apt.log policy=/usr/sbin/policy-rc.d added_policy=0 rc=0
  if ! is_root; then
    sudo -n true 2>/dev/null || die "need to install: $* (run as root, or install them first)"
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null || die "need to install: $* (no apt-get on this machine)"
  mkdir -p "$INFRA_DIR"
  log "installing Debian packages: $* (log: $log_file)"
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    added_policy=1
  fi
  {
    if ((APT_UPDATED == 0)); then
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update
    fi &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
      install -y --no-install-recommends "$@"
  } >>"$log_file" 2>&1 </dev/null || rc=$?
  ((added_policy)) && "${sudo[@]}" rm -f "$policy"
  if ((rc != 0)); then show_logs "$log_file"; die "apt-get install $* failed"; fi
  APT_UPDATED=1
}

# ------------------------------------------------------------- selection ---

COMPONENTS=()
select_components() {
  local want=("$@") c
  if ((${#want[@]} == 0)) && [[ -n ${INFRA_ONLY:-} ]]; then
    read -r -a want <<<"${INFRA_ONLY//,/ }"
  fi
  ((${#want[@]})) || want=("${ALL_COMPONENTS[@]}")
  for c in "${want[@]}"; do
    case $c in
      clickhouse | postgres | kafka) COMPONENTS+=("$c") ;;
      postgresql | pg) COMPONENTS+=(postgres) ;;
      ch) COMPONENTS+=(clickhouse) ;;
      *) die "unknown component '$c' (expected: ${ALL_COMPONENTS[*]})" ;;
    esac
  done
}

# Where an external server is configured, print its address (and succeed).
external_addr() {
  case $1 in
    clickhouse)
      [[ -n ${CLICKHOUSE_HOST:-} && $CLICKHOUSE_HOST != "$DEF_CLICKHOUSE_HOST" ]] &&
        printf 'CLICKHOUSE_HOST=%s' "$CLICKHOUSE_HOST" ;;
    postgres)
      [[ -n ${POSTGRES_QUERY_HOST:-} ]] &&
        [[ $POSTGRES_QUERY_HOST != "$LOCAL_HOST" || $(val POSTGRES_QUERY_PORT) != "$PG_PORT" ]] &&
        printf 'POSTGRES_QUERY_HOST=%s POSTGRES_QUERY_PORT=%s' "$POSTGRES_QUERY_HOST" "$(val POSTGRES_QUERY_PORT)" ;;
    kafka)
      [[ -n ${KAFKA_BROKER:-} && $KAFKA_BROKER != "$DEF_KAFKA_BROKER" ]] &&
        printf 'KAFKA_BROKER=%s' "$KAFKA_BROKER" ;;
  esac
}

# Serialize start/stop between concurrent callers (two make targets, two
# engineers in the same checkout). fd 9 is closed in every server we launch.
take_lock() {
  mkdir -p "$INFRA_DIR"
  exec 9>"$INFRA_DIR/.lock"
  flock -w 600 9 || die "another scripts/infra.sh start/stop holds $INFRA_DIR/.lock"
}

# ------------------------------------------------------------ ClickHouse ---
# Debian bookworm ships ClickHouse 18.16 (old). Its config root is <yandex>,
# and it has no max_server_memory_usage (added in 19.x/20.x): memory is capped
# per query (max_memory_usage) and for all queries together
# (max_memory_usage_for_all_queries) in the default profile, caches are small.
# It runs fine as root with root-owned files, so no chown dance is needed.

CH_PIDFILE=$CH_DIR/clickhouse.pid
CH_CONFIG=$CH_DIR/config.xml

ch_client() {
  clickhouse-client --host "$LOCAL_HOST" --port "$CH_TCP_PORT" \
    --user "$(val CLICKHOUSE_USER)" --password "$(val CLICKHOUSE_PASSWORD)" "$@"
}
# Bounded: a paused server accepts the connection and never answers.
ch_ready() { timeout 10 clickhouse-client --host "$LOCAL_HOST" --port "$CH_TCP_PORT" \
  --user "$(val CLICKHOUSE_USER)" --password "$(val CLICKHOUSE_PASSWORD)" -q 'SELECT 1' >/dev/null 2>&1; }

ch_install() {
  if [[ -x /usr/sbin/clickhouse-server ]] && command -v clickhouse-client >/dev/null; then return 0; fi
  apt_install clickhouse-server clickhouse-client
  [[ -x /usr/sbin/clickhouse-server ]] || die "clickhouse-server not found after install"
}

ch_write_config() {
  local user pw_hash extra_user=''
  user=$(val CLICKHOUSE_USER)
  pw_hash=$(printf '%s' "$(val CLICKHOUSE_PASSWORD)" | sha256sum | cut -d' ' -f1)
  mkdir -p "$CH_DIR/data/tmp" "$CH_DIR/data/user_files" "$CH_DIR/data/format_schemas"

  # The password is stored as SHA-256 so it needs no XML escaping.
  if [[ $user != default ]]; then
    [[ $user =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "CLICKHOUSE_USER='$user' is not a plain name"
    extra_user="<$user><password_sha256_hex>$pw_hash</password_sha256_hex><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></$user>"
  fi

  if write_if_changed "$CH_CONFIG" <<EOF; then
<?xml version="1.0"?>
<!-- Generated by scripts/infra.sh; edits are overwritten. ClickHouse 18.16 format. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$CH_DIR/clickhouse-server.log</log>
        <errorlog>$CH_DIR/clickhouse-server.err.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <!-- Loopback only; no interserver port (no replication here). -->
    <listen_host>$LOCAL_HOST</listen_host>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <http_port>$CH_HTTP_PORT</http_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>32</max_concurrent_queries>
    <!-- Defaults are 5 GB / 8 GB, far too much for a 2-core dev box. -->
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <path>$CH_DIR/data/</path>
    <tmp_path>$CH_DIR/data/tmp/</tmp_path>
    <user_files_path>$CH_DIR/data/user_files/</user_files_path>
    <format_schema_path>$CH_DIR/data/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <!-- Query log is off by default (log_queries=0); keep the table small anyway. -->
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <partition_by>toYYYYMM(event_date)</partition_by>
        <flush_interval_milliseconds>7500</flush_interval_milliseconds>
    </query_log>
</yandex>
EOF
    pid_ours "$CH_PIDFILE" "$CH_CONFIG" && log "clickhouse: config.xml changed; run 'scripts/infra.sh stop clickhouse' then start to apply it"
  fi

  # users.xml is reloaded by a running server by itself.
  write_if_changed "$CH_DIR/users.xml" <<EOF || true
<?xml version="1.0"?>
<!-- Generated by scripts/infra.sh; edits are overwritten. -->
<yandex>
    <profiles>
        <default>
            <!-- ~2 GB per query and ~3 GB for all queries together: 18.16 has no server-wide cap. -->
            <max_memory_usage>2000000000</max_memory_usage>
            <max_memory_usage_for_all_queries>3000000000</max_memory_usage_for_all_queries>
            <!-- 2 cores: fewer query threads and background merge threads. -->
            <max_threads>2</max_threads>
            <background_pool_size>4</background_pool_size>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password_sha256_hex>$pw_hash</password_sha256_hex>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        $extra_user
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

ch_start() {
  local db
  ch_install
  mkdir -p "$CH_DIR"
  ch_write_config
  if pid_ours "$CH_PIDFILE" "$CH_CONFIG"; then
    log "clickhouse: already running (pid $(<"$CH_PIDFILE"))"
  else
    if port_open "$CH_TCP_PORT" || port_open "$CH_HTTP_PORT"; then
      die "clickhouse: port $CH_TCP_PORT or $CH_HTTP_PORT is taken by a process this script did not start from $INFRA_DIR (stop it, or set CLICKHOUSE_HOST to use it)"
    fi
    log "clickhouse: starting on $LOCAL_HOST:$CH_TCP_PORT (http $CH_HTTP_PORT)"
    (cd "$CH_DIR" && launch "$CH_PIDFILE" "$CH_DIR/stdout.log" \
      /usr/sbin/clickhouse-server --config-file="$CH_CONFIG")
  fi
  wait_ready clickhouse "$CH_PIDFILE" ch_ready \
    "$CH_DIR/stdout.log" "$CH_DIR/clickhouse-server.err.log" "$CH_DIR/clickhouse-server.log"
  db=$(val CLICKHOUSE_DB)
  [[ $db =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "CLICKHOUSE_DB='$db' is not a plain name"
  ch_client -q "CREATE DATABASE IF NOT EXISTS \`$db\`" || die "clickhouse: cannot create database $db"
  log "clickhouse: ready ($(ch_client -q 'SELECT version()'), database $db)"
}

ch_stop() { stop_pid clickhouse "$CH_PIDFILE" "$CH_CONFIG"; }

ch_status() {
  if pid_ours "$CH_PIDFILE" "$CH_CONFIG"; then
    if is_paused "$(<"$CH_PIDFILE")"; then echo "clickhouse: paused (pid $(<"$CH_PIDFILE"), SIGSTOP; scripts/infra.sh resume clickhouse)"; return 1; fi
    if ch_ready; then echo "clickhouse: running (pid $(<"$CH_PIDFILE")) on $LOCAL_HOST:$CH_TCP_PORT, http $CH_HTTP_PORT"
    else echo "clickhouse: process up (pid $(<"$CH_PIDFILE")) but not answering on $LOCAL_HOST:$CH_TCP_PORT"; return 1; fi
  else echo "clickhouse: stopped"; return 1; fi
}

# ------------------------------------------------------------ PostgreSQL ---
# Our own cluster (initdb) in $PG_DIR, not Debian's pg_createcluster "main".
# PostgreSQL refuses to run as root, so as root everything server-side runs as
# the postgres OS user (created by the Debian package) and the folder is its.

PG_DATA=$PG_DIR/data
PG_LOG=$PG_DIR/postgres.log

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $d && -x $d/initdb ]] && printf '%s' "$d"
}

# The unix socket lives in our folder, unless that path would be longer than
# the kernel's limit for socket paths (~107 bytes); then under /tmp.
pg_sockdir() {
  local d=$PG_DIR/run
  if ((${#d} + 16 > 100)); then
    d=/tmp/infra-pg-$(printf '%s' "$PG_DIR" | sha256sum | cut -c1-12)
  fi
  printf '%s' "$d"
}

as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_psql() {
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$(pg_sockdir)" -p "$PG_PORT" -U postgres "$@"
}

pg_ready() { "$PG_BIN/pg_isready" -q -h "$LOCAL_HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

pg_running() { [[ -n ${PG_BIN:-} && -f $PG_DATA/PG_VERSION ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

pg_start() {
  local sock pwfile
  PG_BIN=$(pg_bindir) || { apt_install postgresql; PG_BIN=$(pg_bindir) || die "PostgreSQL binaries not found after install"; }
  sock=$(pg_sockdir)
  mkdir -p "$PG_DIR" "$sock"
  if is_root; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (is the postgresql package installed?)"
    # The postgres user must be able to reach its folder: open up the folders
    # we created (umask may have made them 0700) and check the rest.
    chmod o+x "$INFRA_DIR"
    if [[ $(dirname "$INFRA_DIR") == "$REPO_ROOT/.cache" ]]; then chmod o+x "$REPO_ROOT/.cache"; fi
    chown postgres:postgres "$PG_DIR" "$sock"
    touch "$PG_LOG" && chown postgres:postgres "$PG_LOG"
    runuser -u postgres -- test -w "$PG_DIR" ||
      die "the postgres OS user cannot write $PG_DIR: a parent folder is not searchable by others (chmod o+x it, or set INFRA_DIR elsewhere)"
  fi
  chmod 700 "$sock"

  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    log "postgres: creating cluster in $PG_DATA ($("$PG_BIN/postgres" --version))"
    rm -rf "$PG_DATA"
    pwfile=$(mktemp "$PG_DIR/pw.XXXXXX")
    printf '%s\n' "$(val POSTGRES_QUERY_PASSWORD)" >"$pwfile"
    is_root && chown postgres:postgres "$pwfile"
    # local (socket) connections are trusted: the socket folder is 0700 and
    # owned by postgres; TCP needs the password (scram).
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --pwfile="$pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
      --no-instructions >>"$PG_LOG" 2>&1 || { rm -f "$pwfile"; show_logs "$PG_LOG"; die "postgres: initdb failed"; }
    rm -f "$pwfile"
    echo "include_if_exists = 'infra.conf'   # written by scripts/infra.sh" |
      as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
  fi

  # Our settings, rewritten each start; applied at the next server start.
  cat >"$PG_DIR/infra.conf.new" <<EOF
# Generated by scripts/infra.sh; edits are overwritten.
listen_addresses = '$LOCAL_HOST'
port = $PG_PORT
unix_socket_directories = '$sock'
unix_socket_permissions = 0700
max_connections = 100
# Small memory footprint for a 2-core dev/CI box; durability stays on.
shared_buffers = 32MB
work_mem = 4MB
maintenance_work_mem = 32MB
max_wal_size = 256MB
fsync = on
synchronous_commit = on
huge_pages = off
timezone = 'UTC'
log_timezone = 'UTC'
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  if ! cmp -s "$PG_DIR/infra.conf.new" "$PG_DATA/infra.conf" 2>/dev/null; then
    as_pg tee "$PG_DATA/infra.conf" <"$PG_DIR/infra.conf.new" >/dev/null
    pg_running && log "postgres: infra.conf changed; run 'scripts/infra.sh stop postgres' then start to apply it"
  fi

  if pg_running; then
    log "postgres: already running (pid $(head -n 1 "$PG_DATA/postmaster.pid"))"
  else
    if port_open "$PG_PORT"; then
      die "postgres: port $PG_PORT is taken by a process this script did not start from $INFRA_DIR (stop it, or set POSTGRES_QUERY_HOST/PORT to use it)"
    fi
    log "postgres: starting on $LOCAL_HOST:$PG_PORT"
    # pg_ctl -w waits for the server to accept connections; the postmaster
    # detaches into its own session, and setsid makes sure of it.
    as_pg setsid "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$INFRA_TIMEOUT" start \
      >/dev/null 2>>"$PG_LOG" </dev/null 9>&- || { show_logs "$PG_LOG"; die "postgres: pg_ctl start failed (logs above)"; }
  fi

  local deadline=$((SECONDS + INFRA_TIMEOUT))
  until pg_ready; do
    ((SECONDS < deadline)) || { show_logs "$PG_LOG"; die "postgres: not accepting TCP connections on $LOCAL_HOST:$PG_PORT after ${INFRA_TIMEOUT}s"; }
    sleep 0.5
  done

  # Role, password and database as the project expects them (idempotent).
  # psql variables (:'x' / :"x") do the quoting.
  pg_psql -d postgres -v user="$(val POSTGRES_QUERY_USER)" -v pw="$(val POSTGRES_QUERY_PASSWORD)" \
    -v db="$(val POSTGRES_QUERY_DB)" >/dev/null <<'SQL' || { show_logs "$PG_LOG"; die "postgres: cannot create role/database"; }
SELECT format('CREATE ROLE %I LOGIN SUPERUSER', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'user', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
  # The real check: a password login over TCP, as the project connects.
  PGPASSWORD=$(val POSTGRES_QUERY_PASSWORD) "$PG_BIN/psql" -X -q -h "$LOCAL_HOST" -p "$PG_PORT" \
    -U "$(val POSTGRES_QUERY_USER)" -d "$(val POSTGRES_QUERY_DB)" -tAc 'SELECT 1' >/dev/null ||
    die "postgres: password login to $(val POSTGRES_QUERY_DB) over TCP failed"
  log "postgres: ready ($("$PG_BIN/postgres" --version | awk '{print $3}'), database $(val POSTGRES_QUERY_DB))"
}

pg_stop() {
  PG_BIN=$(pg_bindir) || { log "postgres: not installed"; return 0; }
  if ! pg_running; then log "postgres: not running"; return 0; fi
  log "postgres: stopping"
  # shellcheck disable=SC2046  # a paused server (scripts/infra.sh pause) must run to stop
  kill -CONT $(process_tree "$(head -n 1 "$PG_DATA/postmaster.pid")") 2>/dev/null || true
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>>"$PG_LOG" ||
    { log "postgres: fast shutdown timed out, forcing (immediate)"; as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>>"$PG_LOG" || true; }
  log "postgres: stopped"
}

pg_status() {
  PG_BIN=$(pg_bindir) || { echo "postgres: not installed"; return 1; }
  if pg_running; then
    if is_paused "$(head -n 1 "$PG_DATA/postmaster.pid")"; then echo "postgres: paused (pid $(head -n 1 "$PG_DATA/postmaster.pid"), SIGSTOP; scripts/infra.sh resume postgres)"; return 1; fi
    if pg_ready; then echo "postgres: running (pid $(head -n 1 "$PG_DATA/postmaster.pid")) on $LOCAL_HOST:$PG_PORT"
    else echo "postgres: process up but not accepting connections on $LOCAL_HOST:$PG_PORT"; return 1; fi
  else echo "postgres: stopped"; return 1; fi
}

# ----------------------------------------------------------------- Kafka ---
# Kafka 4.x (KRaft only, no ZooKeeper) straight from its jars on Maven Central
# (the Apache download site is not reachable here): scripts/infra/kafka-pom.xml
# lists them and Maven copies them into $KAFKA_DIR/libs once. A stamp holding
# the pom's hash makes later starts skip Maven; editing the pom refetches.
# One JVM runs broker + controller (combined mode), single node, RF 1.

KAFKA_LIBS=$KAFKA_DIR/libs
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_PIDFILE=$KAFKA_DIR/kafka.pid
KAFKA_PROPS=$KAFKA_DIR/server.properties

kafka_install() {
  local stamp=$KAFKA_LIBS/.stamp want
  if ! command -v java >/dev/null; then apt_install openjdk-17-jre-headless; fi
  want=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
  [[ -f $stamp && $(<"$stamp") == "$want" ]] && return 0
  command -v mvn >/dev/null || apt_install maven
  log "kafka: fetching jars from Maven Central (once; log: $KAFKA_DIR/maven.log)"
  rm -rf "$KAFKA_LIBS.tmp"
  mvn -B -q -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" >"$KAFKA_DIR/maven.log" 2>&1 </dev/null ||
    { show_logs "$KAFKA_DIR/maven.log"; die "kafka: Maven could not fetch the jars of $KAFKA_POM"; }
  ls "$KAFKA_LIBS.tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka: no kafka_2.13 jar after the Maven fetch"
  rm -rf "$KAFKA_LIBS"
  mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
  echo "$want" >"$stamp"
}

kafka_version() { local j; j=$(ls "$KAFKA_LIBS"/kafka_2.13-*.jar 2>/dev/null | head -n 1); j=${j##*kafka_2.13-}; printf '%s' "${j%.jar}"; }

kafka_write_config() {
  # log4j2 config of the broker: a size-capped file in our folder.
  write_if_changed "$KAFKA_DIR/log4j2.properties" <<EOF || true
# Generated by scripts/infra.sh.
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $KAFKA_DIR/server.log
appender.file.filePattern = $KAFKA_DIR/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
# The state-change and request loggers are chatty at INFO.
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
  # Command-line tools (StorageTool, TopicCommand): warnings to stderr only.
  write_if_changed "$KAFKA_DIR/tools-log4j2.properties" <<'EOF' || true
# Generated by scripts/infra.sh.
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
  if write_if_changed "$KAFKA_PROPS" <<EOF; then
# Generated by scripts/infra.sh; edits are overwritten.
# KRaft combined mode: this one JVM is both broker and (sole) controller.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$LOCAL_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$LOCAL_HOST:$KAFKA_PORT,CONTROLLER://$LOCAL_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$LOCAL_HOST:$KAFKA_PORT,CONTROLLER://$LOCAL_HOST:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
# Single node: every internal topic with replication factor 1.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=true
# Consumers join at once instead of after the default 3 s delay (tests).
group.initial.rebalance.delay.ms=0
# 2 cores: few threads.
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
log.retention.hours=24
log.segment.bytes=67108864
EOF
    pid_ours "$KAFKA_PIDFILE" "$KAFKA_PROPS" && log "kafka: server.properties changed; run 'scripts/infra.sh stop kafka' then start to apply it"
  fi
  return 0
}

# A JVM for Kafka's command-line classes: small heap, fast start.
kafka_tool() {
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

# Ready = the broker answers admin requests: create the project's topic with
# TopicCommand (idempotent thanks to --if-not-exists). timeout guards against
# a broker that accepts connections but never answers.
kafka_ready() {
  port_open "$KAFKA_PORT" || return 1
  timeout 60 java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.properties" -cp "$KAFKA_LIBS/*" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$LOCAL_HOST:$KAFKA_PORT" \
    --create --if-not-exists --topic "$(val KAFKA_TOPIC)" \
    --partitions "$KAFKA_TOPIC_PARTITIONS" --replication-factor 1 >>"$KAFKA_DIR/topic.log" 2>&1
}

kafka_start() {
  local cluster_id
  mkdir -p "$KAFKA_DIR" "$KAFKA_DATA"
  kafka_install
  kafka_write_config
  : >"$KAFKA_DIR/topic.log"   # only this run's readiness attempts
  if pid_ours "$KAFKA_PIDFILE" "$KAFKA_PROPS"; then
    log "kafka: already running (pid $(<"$KAFKA_PIDFILE"))"
  else
    if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
      die "kafka: port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is taken by a process this script did not start from $INFRA_DIR (stop it, or set KAFKA_BROKER to use it)"
    fi
    if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
      # KRaft storage must be formatted once with a cluster id; --standalone
      # makes this node the single voter of the controller quorum.
      cluster_id=$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"$KAFKA_DIR/format.log") ||
        { show_logs "$KAFKA_DIR/format.log"; die "kafka: cannot generate a cluster id"; }
      log "kafka: formatting KRaft storage in $KAFKA_DATA (cluster id $cluster_id)"
      kafka_tool kafka.tools.StorageTool format --standalone --ignore-formatted \
        -t "$cluster_id" -c "$KAFKA_PROPS" >>"$KAFKA_DIR/format.log" 2>&1 ||
        { show_logs "$KAFKA_DIR/format.log"; die "kafka: storage format failed"; }
    fi
    log "kafka: starting $(kafka_version) on $LOCAL_HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
    # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of JVM options
    (cd "$KAFKA_DIR" && launch "$KAFKA_PIDFILE" "$KAFKA_DIR/stdout.log" \
      java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -Dkafka.logs.dir="$KAFKA_DIR" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS")
  fi
  wait_ready kafka "$KAFKA_PIDFILE" kafka_ready \
    "$KAFKA_DIR/stdout.log" "$KAFKA_DIR/topic.log" "$KAFKA_DIR/server.log"
  log "kafka: ready ($(kafka_version), topic $(val KAFKA_TOPIC) with $KAFKA_TOPIC_PARTITIONS partitions)"
}

kafka_stop() { stop_pid kafka "$KAFKA_PIDFILE" "$KAFKA_PROPS"; }

kafka_status() {
  if pid_ours "$KAFKA_PIDFILE" "$KAFKA_PROPS"; then
    if is_paused "$(<"$KAFKA_PIDFILE")"; then echo "kafka: paused (pid $(<"$KAFKA_PIDFILE"), SIGSTOP; scripts/infra.sh resume kafka)"; return 1; fi
    if port_open "$KAFKA_PORT"; then echo "kafka: running (pid $(<"$KAFKA_PIDFILE")) on $LOCAL_HOST:$KAFKA_PORT, controller $KAFKA_CONTROLLER_PORT"
    else echo "kafka: process up (pid $(<"$KAFKA_PIDFILE")) but port $KAFKA_PORT closed"; return 1; fi
  else echo "kafka: stopped"; return 1; fi
}

# -------------------------------------------------------------- commands ---

cmd_start() {
  local c ext t0=$SECONDS t1
  take_lock
  for c in "${COMPONENTS[@]}"; do
    if ext=$(external_addr "$c"); then log "$c: skipped, using external server ($ext)"; continue; fi
    t1=$SECONDS
    case $c in
      clickhouse) ch_start ;;
      postgres) pg_start ;;
      kafka) kafka_start ;;
    esac
    log "$c: took $((SECONDS - t1))s"
  done
  log "all requested components ready in $((SECONDS - t0))s; use: eval \"\$(scripts/infra.sh env)\""
}

cmd_stop() {
  local c i
  take_lock
  # Reverse order: Kafka first, ClickHouse last.
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c=${COMPONENTS[i]}
    case $c in
      clickhouse) ch_stop ;;
      postgres) pg_stop ;;
      kafka) kafka_stop ;;
    esac
  done
}

cmd_status() {
  local c ext rc=0
  for c in "${COMPONENTS[@]}"; do
    if ext=$(external_addr "$c"); then echo "$c: external ($ext), not managed here"; continue; fi
    case $c in
      clickhouse) ch_status || rc=3 ;;
      postgres) pg_status || rc=3 ;;
      kafka) kafka_status || rc=3 ;;
    esac
  done
  return "$rc"
}

cmd_env() {
  local v
  for v in "${ENV_VARS[@]}"; do
    printf 'export %s=%q\n' "$v" "$(val "$v")"
  done
  # A second instance: later calls of this script (fault tests) must reach it too.
  if [[ -n $INFRA_DIR_GIVEN ]] || ((INFRA_PORT_OFFSET != 0)); then
    printf 'export INFRA_DIR=%q\n' "$INFRA_DIR"
    printf 'export INFRA_PORT_OFFSET=%q\n' "$INFRA_PORT_OFFSET"
  fi
}

# The pid of a component's server, if it runs and is ours (else fails).
server_pid() {
  case $1 in
    clickhouse) pid_ours "$CH_PIDFILE" "$CH_CONFIG" && cat "$CH_PIDFILE" ;;
    kafka) pid_ours "$KAFKA_PIDFILE" "$KAFKA_PROPS" && cat "$KAFKA_PIDFILE" ;;
    postgres)
      PG_BIN=$(pg_bindir) || return 1
      pg_running && head -n 1 "$PG_DATA/postmaster.pid" ;;
  esac
}

# A process and all its descendants, parents first.
process_tree() {
  local pid=$1 child
  echo "$pid"
  for child in $(pgrep -P "$pid" || true); do process_tree "$child"; done
}

# Stop a server the way a crash would: no checkpoint, no clean shutdown.
cmd_crash() {
  local c ext pid
  for c in "${COMPONENTS[@]}"; do
    if ext=$(external_addr "$c"); then die "$c: external ($ext), not ours to crash"; fi
    pid=$(server_pid "$c") || { log "$c: not running"; continue; }
    # shellcheck disable=SC2046  # one pid per word; a paused server must run to die
    kill -CONT $(process_tree "$pid") 2>/dev/null || true
    if [[ $c == postgres ]]; then
      PG_BIN=$(pg_bindir)
      as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>>"$PG_LOG" ||
        die "postgres: immediate stop failed"
    else
      # shellcheck disable=SC2046
      kill -KILL $(process_tree "$pid") 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    log "$c: crashed (pid $pid)"
  done
}

# SIGSTOP (pause) or SIGCONT (resume) a server with every process it forked
# (PostgreSQL runs one process per connection): to a client it then looks
# hung, not down: connections are accepted by the kernel, nothing answers.
# Parents are stopped first, so a stopped server forks nothing new meanwhile.
cmd_signal() {
  local signal=$1 c ext pid
  for c in "${COMPONENTS[@]}"; do
    if ext=$(external_addr "$c"); then die "$c: external ($ext), not ours to $2"; fi
    pid=$(server_pid "$c") || die "$c: not running from $INFRA_DIR, nothing to $2"
    # shellcheck disable=SC2046  # one pid per word
    kill "-$signal" $(process_tree "$pid")
    log "$c: ${2}d (pid $pid and its children)"
  done
}

usage() {
  sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    start) select_components "$@"; cmd_start ;;
    stop) select_components "$@"; cmd_stop ;;
    status) select_components "$@"; cmd_status ;;
    env) cmd_env ;;
    pause) (($#)) || die "pause: name a component"; select_components "$@"; cmd_signal STOP pause ;;
    resume) (($#)) || die "resume: name a component"; select_components "$@"; cmd_signal CONT resume ;;
    crash) (($#)) || die "crash: name a component"; select_components "$@"; take_lock; cmd_crash ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
