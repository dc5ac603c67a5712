#!/usr/bin/env bash
# Starts a throwaway ClickHouse server for the tests: Debian's
# clickhouse-server (installed when missing), on free loopback ports, with
# everything in a temporary directory. Source it; it exports
#
#   CALLFLOW_TEST_CLICKHOUSE          host:port of the native protocol
#   CALLFLOW_TEST_CLICKHOUSE_SERVER   the server binary
#   CALLFLOW_TEST_CLICKHOUSE_CONFIG   its config file (fault tests start it again)
#   CALLFLOW_TEST_CLICKHOUSE_DIR      the temporary directory
#
# and defines clickhouse_stop, which the caller runs on exit.

clickhouse_install() {
  if command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ]; then
    return 0
  fi
  echo "== installing clickhouse-server (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq clickhouse-server >/dev/null
}

clickhouse_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

clickhouse_start() {
  clickhouse_install
  local bin dir tcp http
  bin=$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)
  dir=$(mktemp -d /tmp/callflow-clickhouse.XXXXXX)
  tcp=$(clickhouse_free_port)
  http=$(clickhouse_free_port)
  mkdir -p "$dir/data" "$dir/tmp" "$dir/log" "$dir/user_files"
  cat > "$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
  cat > "$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log><errorlog>$dir/log/error.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>$tcp</tcp_port>
  <http_port>$http</http_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
</yandex>
XML
  "$bin" --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
  echo $! > "$dir/pid"
  local i
  for i in $(seq 1 100); do
    if clickhouse-client --host 127.0.0.1 --port "$tcp" -q 'SELECT 1' >/dev/null 2>&1; then
      break
    fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "clickhouse-server exited:"; tail -20 "$dir/log/stdout.log" "$dir/log/error.log" 2>/dev/null; return 1
    fi
    sleep 0.2
  done
  if ! clickhouse-client --host 127.0.0.1 --port "$tcp" -q 'SELECT 1' >/dev/null 2>&1; then
    echo "clickhouse-server did not answer on 127.0.0.1:$tcp"; return 1
  fi
  export CALLFLOW_TEST_CLICKHOUSE="127.0.0.1:$tcp"
  export CALLFLOW_TEST_CLICKHOUSE_SERVER="$bin"
  export CALLFLOW_TEST_CLICKHOUSE_CONFIG="$dir/config.xml"
  export CALLFLOW_TEST_CLICKHOUSE_DIR="$dir"
  echo "== clickhouse $(clickhouse-client --host 127.0.0.1 --port "$tcp" -q 'SELECT version()') on $CALLFLOW_TEST_CLICKHOUSE"
}

clickhouse_stop() {
  [ -n "${CALLFLOW_TEST_CLICKHOUSE_DIR:-}" ] || return 0
  # Fault tests may have restarted the server: stop whatever runs on this config.
  pkill -f -- "--config-file=$CALLFLOW_TEST_CLICKHOUSE_CONFIG" 2>/dev/null || true
  sleep 0.5
  pkill -9 -f -- "--config-file=$CALLFLOW_TEST_CLICKHOUSE_CONFIG" 2>/dev/null || true
  rm -rf "$CALLFLOW_TEST_CLICKHOUSE_DIR"
}
