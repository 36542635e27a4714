# shellcheck shell=bash disable=SC2034
# Shared helpers for scripts/es/{install,start,stop,status}. Sourced, not executed.

ES_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ES_REPO_DIR="$(cd "$ES_SCRIPT_DIR/../.." && pwd)"
ES_SERVICES_DIR="${TASKFLOW_SERVICES_DIR:-$ES_REPO_DIR/.services}"
ES_INSTALL_DIR="$ES_SERVICES_DIR/es"
# path.home of the node: lib/ (server jars), modules/, plugins/, launcher/.
ES_HOME="$ES_INSTALL_DIR/home"
# Unprivileged account the node runs as when the scripts run as root (Elasticsearch must not run as root).
ES_RUN_USER="${TASKFLOW_ES_USER:-taskflow-es}"

es_die() {
  echo "es: $*" >&2
  exit 1
}

es_log() {
  echo "es: $*" >&2
}

# Major version of the JDK whose home is $1 (empty if it is not a usable JDK).
es_java_major() {
  local home="$1" line
  [[ -x "$home/bin/java" && -x "$home/bin/javac" ]] || return 0
  line="$("$home/bin/java" -XshowSettings:properties -version 2>&1 | grep -m1 'java.specification.version' || true)"
  line="${line##*= }"
  echo "${line%%.*}"
}

# Finds a JDK >= 21 (Elasticsearch 9 needs it). Honours TASKFLOW_ES_JAVA_HOME, then ES_JAVA_HOME,
# then the JDKs under /usr/lib/jvm (newest first), then JAVA_HOME and the java on PATH.
es_find_java_home() {
  local candidates=() c major
  [[ -n "${TASKFLOW_ES_JAVA_HOME:-}" ]] && candidates+=("$TASKFLOW_ES_JAVA_HOME")
  [[ -n "${ES_JAVA_HOME:-}" ]] && candidates+=("$ES_JAVA_HOME")
  if [[ -d /usr/lib/jvm ]]; then
    while IFS= read -r c; do candidates+=("$c"); done < <(find /usr/lib/jvm -mindepth 1 -maxdepth 1 -type d | sort -rV)
  fi
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME")
  if command -v javac >/dev/null 2>&1; then
    candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")")
  fi
  for c in "${candidates[@]}"; do
    major="$(es_java_major "$c")"
    if [[ -n "$major" && "$major" =~ ^[0-9]+$ && "$major" -ge 21 ]]; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

# Absolute path of $1, which may not exist yet.
es_abspath() {
  local p="$1"
  if [[ "$p" != /* ]]; then p="$PWD/$p"; fi
  realpath -m "$p"
}

# True if $1 is the pid of a live TaskflowEsNode JVM (guards against recycled pids).
es_pid_is_node() {
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'TaskflowEsNode'
}

# Pid of the live node whose config dir is DIR/config, else nothing (exit 1). Trusts DIR/es.pid
# when it names such a node; otherwise looks for the process by its exact launcher arguments and
# rewrites DIR/es.pid, so a lost or stale pid file never leads to a second node on the same data.
es_running_pid() {
  local dir="$1" pid="" re
  if [[ -f "$dir/es.pid" ]]; then
    pid="$(tr -dc '0-9' <"$dir/es.pid")"
    if es_pid_is_node "$pid" && tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$dir/config"; then
      echo "$pid"
      return 0
    fi
  fi
  re="$(printf '%s' "$dir/config" | sed 's/[][\.*^$+?(){}|]/\\&/g')"
  pid="$(pgrep -o -f "TaskflowEsNode [^ ]+ $re\$" 2>/dev/null || true)"
  es_pid_is_node "$pid" || return 1
  echo "$pid" >"$dir/es.pid" 2>/dev/null || true
  echo "$pid"
}

# True if GET http://127.0.0.1:PORT/ answers 200 with Elasticsearch's product header.
es_http_ok() {
  local port="$1"
  curl -fsS --max-time 3 -o /dev/null -D - "http://127.0.0.1:$port/" 2>/dev/null |
    tr -d '\r' | grep -qi '^x-elastic-product: *Elasticsearch'
}

# Cluster health status (green/yellow/red), or nothing.
es_health() {
  local port="$1"
  curl -fsS --max-time 3 "http://127.0.0.1:$port/_cluster/health" 2>/dev/null |
    sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'
}
