#!/usr/bin/env bash
# Starts a throwaway ClickHouse cluster for the tests: one ZooKeeper
# (Debian's zookeeper, installed when missing) and four clickhouse-server
# processes (two shards of two replicas), on free loopback ports, with
# everything in a temporary directory. Each server has its own config.d
# with its zookeeper, macros ({shard}, {replica}) and remote_servers
# (cluster "callflow", internal_replication). Source it after
# scripts/clickhouse.sh (it uses clickhouse_install and
# clickhouse_free_port); it exports
#
#   CALLFLOW_TEST_CLICKHOUSE_CLUSTER          the servers' native addresses, shard by shard
#   CALLFLOW_TEST_CLICKHOUSE_CLUSTER_NAME     callflow
#   CALLFLOW_TEST_CLICKHOUSE_CLUSTER_CONFIGS  their config files, in the same order
#   CALLFLOW_TEST_CLICKHOUSE_CLUSTER_DIR      the temporary directory
#
# and defines clickhouse_cluster_stop, which the caller runs on exit.

zookeeper_install() {
  if [ -f /usr/share/java/zookeeper.jar ]; then
    return 0
  fi
  echo "== installing zookeeper (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq zookeeper >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq zookeeper >/dev/null; }
}

# zookeeper_ok PORT: the server answers "imok".
zookeeper_ok() {
  [ "$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf ruok >&3; cat <&3" 2>/dev/null)" = imok ]
}

clickhouse_cluster_start() {
  clickhouse_install
  zookeeper_install
  local dir bin zk i shard d remote addrs="" configs=""
  dir=$(mktemp -d /tmp/callflow-chcluster.XXXXXX)
  export CALLFLOW_TEST_CLICKHOUSE_CLUSTER_DIR="$dir"
  bin=$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)

  zk=$(clickhouse_free_port)
  mkdir -p "$dir/zk/data"
  cat > "$dir/zk/zoo.cfg" <<CFG
tickTime=500
initLimit=20
syncLimit=10
dataDir=$dir/zk/data
clientPort=$zk
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok
CFG
  java -Xmx256m -cp "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/*" \
    -Dzookeeper.log.dir="$dir/zk" -Dlog4j.configuration=file:/etc/zookeeper/conf/log4j.properties \
    org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zk/zoo.cfg" >"$dir/zk/zk.log" 2>&1 &
  echo $! > "$dir/zk/pid"
  for i in $(seq 1 100); do zookeeper_ok "$zk" && break; sleep 0.2; done
  if ! zookeeper_ok "$zk"; then
    echo "zookeeper did not answer on 127.0.0.1:$zk:"; tail -20 "$dir/zk/zk.log"; return 1
  fi

  local -a tcp http inter
  for i in 1 2 3 4; do
    tcp[$i]=$(clickhouse_free_port); http[$i]=$(clickhouse_free_port); inter[$i]=$(clickhouse_free_port)
  done
  remote="<yandex><remote_servers><callflow>"
  for shard in 1 2; do
    remote+="<shard><internal_replication>true</internal_replication>"
    for i in $((2*shard-1)) $((2*shard)); do
      remote+="<replica><host>127.0.0.1</host><port>${tcp[$i]}</port></replica>"
    done
    remote+="</shard>"
  done
  remote+="</callflow></remote_servers></yandex>"

  for i in 1 2 3 4; do
    d="$dir/ch$i"; shard=$(( (i+1)/2 ))
    mkdir -p "$d/data" "$d/tmp" "$d/log" "$d/user_files" "$d/config.d"
    cat > "$d/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
    cat > "$d/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$d/log/server.log</log><errorlog>$d/log/error.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>${tcp[$i]}</tcp_port>
  <http_port>${http[$i]}</http_port>
  <interserver_http_port>${inter[$i]}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>$d/data/</path>
  <tmp_path>$d/tmp/</tmp_path>
  <user_files_path>$d/user_files/</user_files_path>
  <users_config>$d/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>134217728</mark_cache_size>
  <uncompressed_cache_size>134217728</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>
XML
    echo "<yandex><zookeeper><node><host>127.0.0.1</host><port>$zk</port></node></zookeeper></yandex>" > "$d/config.d/zookeeper.xml"
    echo "<yandex><macros><shard>0$shard</shard><replica>r$i</replica></macros></yandex>" > "$d/config.d/macros.xml"
    echo "$remote" > "$d/config.d/remote_servers.xml"
    "$bin" --config-file="$d/config.xml" >"$d/log/stdout.log" 2>&1 &
    addrs+="${addrs:+,}127.0.0.1:${tcp[$i]}"
    configs+="${configs:+,}$d/config.xml"
  done
  for i in 1 2 3 4; do
    local ok=""
    for _ in $(seq 1 150); do
      if clickhouse-client --host 127.0.0.1 --port "${tcp[$i]}" -q 'SELECT 1' >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.2
    done
    if [ -z "$ok" ]; then
      echo "clickhouse server $i did not answer on 127.0.0.1:${tcp[$i]}:"; tail -20 "$dir/ch$i/log/stdout.log" "$dir/ch$i/log/error.log" 2>/dev/null; return 1
    fi
  done
  export CALLFLOW_TEST_CLICKHOUSE_CLUSTER="$addrs"
  export CALLFLOW_TEST_CLICKHOUSE_CLUSTER_NAME=callflow
  export CALLFLOW_TEST_CLICKHOUSE_CLUSTER_CONFIGS="$configs"
  echo "== clickhouse cluster callflow (2 shards x 2 replicas, zookeeper on 127.0.0.1:$zk): $addrs"
}

clickhouse_cluster_stop() {
  [ -n "${CALLFLOW_TEST_CLICKHOUSE_CLUSTER_DIR:-}" ] || return 0
  local dir=$CALLFLOW_TEST_CLICKHOUSE_CLUSTER_DIR
  # Tests may have restarted servers: stop whatever runs on these configs.
  pkill -f -- "--config-file=$dir/" 2>/dev/null || true
  [ -f "$dir/zk/pid" ] && kill "$(cat "$dir/zk/pid")" 2>/dev/null || true
  sleep 0.5
  pkill -9 -f -- "--config-file=$dir/" 2>/dev/null || true
  [ -f "$dir/zk/pid" ] && kill -9 "$(cat "$dir/zk/pid")" 2>/dev/null || true
  rm -rf "$dir"
}
