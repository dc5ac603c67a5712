package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/callflow/callflow/archiver"
	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/ingest"
	"github.com/callflow/callflow/ingest/spool"
	"github.com/callflow/callflow/internal/admin"
	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/certs"
	"github.com/callflow/callflow/internal/node"
	"github.com/callflow/callflow/internal/secret"
	"github.com/callflow/callflow/internal/session"
)

// options are the flags of the long-running roles. Each role registers the
// groups it uses; defaults live in the packages' Default* constants.
type options struct {
	// NATS
	natsURL      string
	natsListen   string // serve only: the embedded server's listener
	dataDir      string
	natsUser     string
	natsPassword string
	natsToken    string
	natsNKey     string
	natsCreds    string
	natsTLSCA    string
	natsTLSCert  string
	natsTLSKey   string

	// records stream and sessions bucket
	stream           string
	streamMaxAge     time.Duration
	streamDuplicates time.Duration
	streamMaxBytes   int64
	streamReplicas   int
	streamSources    string // archiver only: the centre's stream sources these domains
	bucket           string
	bucketReplicas   int
	bucketMirror     string
	sessionHistory   time.Duration
	countDelay       time.Duration
	flowRetention    time.Duration

	// ingest
	httpAddr       string
	maxBody        int
	decideTimeout  time.Duration
	recordTimeout  time.Duration
	spoolMaxBytes  int64
	breakerFails   uint
	breakerOpenFor time.Duration
	breakerProbes  uint
	fallbackText   string
	fallbackVoice  string
	instance       string
	webhookAuth    string
	allowCIDRs     string
	trustedProxies string
	readTimeout    time.Duration
	writeTimeout   time.Duration
	idleTimeout    time.Duration
	maxHeaderBytes int
	maxConns       int
	maxConnsPerIP  int

	// deciders
	deciders          int
	outOfSessionText  string
	flowEndText       string
	outOfSessionVoice string

	// archiver
	clickhouseAddr     string
	clickhouseDatabase string
	clickhouseCluster  string
	archiveRetention   int
	clickhouseUser     string
	clickhousePassword string
	clickhouseCompress string
	clickhouseTLS      bool
	clickhouseTLSCA    string
	clickhouseTLSCert  string
	clickhouseTLSKey   string
	batchMaxRows       int
	batchMaxBytes      int
	batchMaxAge        time.Duration
	archiveInserts     int
	archiverDurable    string
	archiverAckWait    time.Duration

	// admin
	adminAddr      string
	adminToken     string
	adminRateLimit float64
	adminRateBurst int
	adminTLSCert   string
	adminTLSKey    string
	httpTLSCert    string
	httpTLSKey     string

	// secrets that may be read from files (see secretVar)
	secrets []*secretSetting

	// config is the --config file
	config configFile

	// process
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	pprofAddr       string
	memoryLimit     string // --memory-limit, resolved into gc by validate
	gcPercent       string
	gc              gcSettings
}

func (o *options) registerNATS(fs *flag.FlagSet, embedded bool) {
	if embedded {
		fs.StringVar(&o.natsURL, "nats-url", "", "NATS server URLs, comma-separated; empty runs an embedded server")
		fs.StringVar(&o.natsListen, "nats-listen", "127.0.0.1:4222", "listen address of the embedded NATS server, for more deciders and the nats CLI")
	} else {
		fs.StringVar(&o.natsURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated")
	}
	fs.StringVar(&o.natsUser, "nats-user", "", "NATS user (with --nats-password)")
	o.secretVar(fs, &o.natsPassword, "nats-password", "NATS password of --nats-user")
	o.secretVar(fs, &o.natsToken, "nats-token", "NATS authentication token")
	fs.StringVar(&o.natsNKey, "nats-nkey", "", "file holding the NKey seed to authenticate to NATS with")
	fs.StringVar(&o.natsCreds, "nats-creds", "", "NATS credentials file (.creds: user JWT and seed)")
	fs.StringVar(&o.natsTLSCA, "nats-tls-ca", "", "CA certificate file (PEM) that verifies the NATS servers; any --nats-tls-* setting requires TLS")
	fs.StringVar(&o.natsTLSCert, "nats-tls-cert", "", "client certificate file (PEM) presented to NATS")
	fs.StringVar(&o.natsTLSKey, "nats-tls-key", "", "private key file (PEM) of --nats-tls-cert")
	fs.StringVar(&o.dataDir, "data-dir", "./data", "directory for the embedded JetStream store and the ingest spool (<data-dir>/spool) of records JetStream did not acknowledge in time")
}

func (o *options) registerStream(fs *flag.FlagSet) {
	fs.StringVar(&o.stream, "stream", broker.DefaultStream, "JetStream stream of call records")
	fs.DurationVar(&o.streamMaxAge, "stream-max-age", broker.DefaultMaxAge, "how long records are kept in the stream (bounds a survivable archiver outage)")
	fs.DurationVar(&o.streamDuplicates, "stream-duplicates", broker.DefaultDuplicates, "window in which a webhook sent twice is stored once (nats-server keeps every id of the window in memory)")
	fs.Int64Var(&o.streamMaxBytes, "stream-max-bytes", broker.DefaultMaxBytes, "bytes the stream keeps on each replica when created, past which the oldest records are dropped (with --stream-max-age, bounds a survivable archiver outage; -1: no bound); must fit the NATS servers' max_file_store")
	fs.IntVar(&o.streamReplicas, "stream-replicas", 1, "replicas of the stream when created (3 on a three-node cluster)")
}

// registerStreamSources registers the archiver's flag that makes the
// records stream the centre's of a multi-region deployment.
func (o *options) registerStreamSources(fs *flag.FlagSet) {
	fs.StringVar(&o.streamSources, "stream-source-domains", "", "multi-region: JetStream domains (comma-separated) of the other regions, whose records streams the centre's stream sources besides its own region's records; added to the stream when the archiver creates it or finds it without them (see deploy/nats/README.md)")
}

func (o *options) registerBucket(fs *flag.FlagSet) {
	fs.StringVar(&o.bucket, "sessions-bucket", session.DefaultBucket, "JetStream key-value bucket of masking sessions")
	fs.IntVar(&o.bucketReplicas, "sessions-replicas", 1, "replicas of the sessions bucket when created (3 on a three-node cluster)")
	fs.StringVar(&o.bucketMirror, "sessions-mirror-domain", "", "multi-region: JetStream domain of the centre whose sessions bucket this region's is a mirror of (read here, written there; see deploy/nats/README.md); empty: the bucket is this NATS system's own")
	fs.DurationVar(&o.flowRetention, "flow-retention", session.DefaultFlowRetention, "how long a replaced or deleted IVR flow version stays readable, so that calls already in it finish on it")
	fs.DurationVar(&o.sessionHistory, "session-history", session.DefaultHistory, "how long closed and expired sessions stay readable (GET, lists of closed sessions) before they are forgotten")
}

func (o *options) registerIngest(fs *flag.FlagSet) {
	fs.StringVar(&o.httpAddr, "http-addr", ingest.DefaultAddr, "webhook listener address (serves POST /vca)")
	fs.IntVar(&o.maxBody, "max-body", ingest.DefaultMaxBody, "largest webhook body accepted, in bytes (larger is 413)")
	fs.DurationVar(&o.decideTimeout, "decide-timeout", ingest.DefaultDecideTimeout, "how long a call waits for a decider before the fallback")
	fs.DurationVar(&o.recordTimeout, "record-timeout", ingest.DefaultRecordTimeout, "how long a call waits for JetStream to acknowledge its record before it is spooled to disk")
	fs.Int64Var(&o.spoolMaxBytes, "spool-max-bytes", spool.DefaultMaxBytes, "bound of the on-disk spool of unacknowledged records, in bytes (past it, records are lost and counted)")
	fs.UintVar(&o.breakerFails, "breaker-failures", 5, "consecutive decider failures that open the circuit breaker")
	fs.DurationVar(&o.breakerOpenFor, "breaker-open-for", 5*time.Second, "how long the breaker stays open before probing the deciders again")
	fs.UintVar(&o.breakerProbes, "breaker-half-open-probes", 3, "calls let through to probe the deciders while half open")
	fs.StringVar(&o.fallbackText, "fallback-text", ingest.DefaultFallback.Text, "said to callers when no decider can answer")
	fs.StringVar(&o.fallbackVoice, "fallback-voice", ingest.DefaultFallback.VoiceProfile, "voice profile of the fallback message")
	fs.StringVar(&o.instance, "instance", "", "name of this ingestor in records (default: host name)")
	fs.StringVar(&o.httpTLSCert, "http-tls-cert", "", "certificate file (PEM) to serve the webhook over TLS; reloaded on SIGHUP")
	fs.StringVar(&o.httpTLSKey, "http-tls-key", "", "private key file (PEM) of --http-tls-cert")
	o.secretVar(fs, &o.webhookAuth, "webhook-auth", "accepted Authorization header values of webhooks (8x8's httpAuthHeader), comma-separated to rotate; empty accepts any request")
	fs.StringVar(&o.allowCIDRs, "webhook-allow-cidrs", "", "source ranges allowed to call the webhook (8x8's published ranges), comma-separated CIDRs; empty allows any")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "load balancers whose X-Forwarded-For names the client, comma-separated CIDRs; the header of any other peer is ignored")
	fs.DurationVar(&o.readTimeout, "http-read-timeout", 5*time.Second, "webhook listener: the longest a request may take to arrive (slow clients get 408 or are cut off)")
	fs.DurationVar(&o.writeTimeout, "http-write-timeout", 5*time.Second, "webhook listener: the longest an answer may take to be written")
	fs.DurationVar(&o.idleTimeout, "http-idle-timeout", 60*time.Second, "webhook listener: how long a kept-alive connection may sit idle")
	fs.IntVar(&o.maxHeaderBytes, "http-max-header-bytes", ingest.DefaultMaxHeaderBytes, "webhook listener: largest request header, in bytes (larger is 431)")
	fs.IntVar(&o.maxConns, "http-max-conns", ingest.DefaultMaxConns, "webhook listener: connections served at once, past which new ones get 503 (each holds a descriptor: keep it below the process's open-files limit)")
	fs.IntVar(&o.maxConnsPerIP, "http-max-conns-per-ip", 0, "webhook listener: connections from one address, past which new ones get 429 (0: unlimited; 8x8 calls from few addresses)")
}

// secretVar registers a secret setting and its -file companion, which
// reads it from a file so that it appears neither in process arguments nor
// in the environment. A file holds one value per line.
func (o *options) secretVar(fs *flag.FlagSet, p *string, name, usage string) {
	s := &secretSetting{name: name, value: p}
	o.secrets = append(o.secrets, s)
	fs.StringVar(p, name, "", usage)
	fs.StringVar(&s.file, name+"-file", "", "file holding --"+name+" (one value per line), so that it appears neither in process arguments nor in the environment; read again on SIGHUP")
}

// secretSetting is a secret flag and the file it may be read from.
type secretSetting struct {
	name  string
	value *string
	file  string
	// live is the value for what reads it at each connection (NATS,
	// ClickHouse), replaced when SIGHUP reads the file again.
	live secret.Value
}

// readSecrets loads the secrets given as files, and refuses a secret that
// is a redaction placeholder (from a copy of `config print` or of a log).
func (o *options) readSecrets() error {
	for _, s := range o.secrets {
		if err := s.read(); err != nil {
			return err
		}
		if err := s.check(*s.value); err != nil {
			return err
		}
		s.live.Store(*s.value)
	}
	return nil
}

// check refuses a value (comma-separated) that holds a redaction
// placeholder.
func (s *secretSetting) check(value string) error {
	for _, v := range strings.Split(value, ",") {
		if placeholder(v) {
			return fmt.Errorf("--%s holds the placeholder %q, not a secret: set the real value (or leave it empty)", s.name, strings.TrimSpace(v))
		}
	}
	return nil
}

// read loads the secret from its file, when one is given.
func (s *secretSetting) read() error {
	if s.file == "" {
		return nil
	}
	if *s.value != "" {
		return fmt.Errorf("--%s and --%s-file are both set; give one", s.name, s.name)
	}
	v, err := s.readFile()
	if err != nil {
		return err
	}
	*s.value = v
	return nil
}

// readFile reads the secret's file: one value per line, returned
// comma-separated.
func (s *secretSetting) readFile() (string, error) {
	b, err := os.ReadFile(s.file)
	if err != nil {
		return "", fmt.Errorf("--%s-file: %w", s.name, err)
	}
	var values []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			values = append(values, line)
		}
	}
	if len(values) == 0 {
		return "", fmt.Errorf("--%s-file %s holds no value", s.name, s.file)
	}
	return strings.Join(values, ","), nil
}

// secret returns the secret setting called name, or nil when the role has
// none.
func (o *options) secret(name string) *secretSetting {
	for _, s := range o.secrets {
		if s.name == name {
			return s
		}
	}
	return nil
}

// list splits a comma-separated setting, dropping blanks.
func list(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (o *options) registerDeciders(fs *flag.FlagSet, def int) {
	fs.IntVar(&o.deciders, "deciders", def, "decider instances in this process")
	fs.StringVar(&o.outOfSessionText, "out-of-session-text", decider.DefaultOutOfSession.Text, "said to callers who are not in a session on the number they called")
	fs.StringVar(&o.flowEndText, "flow-end-text", decider.DefaultFlowEnd.Text, "said before hanging up on a caller whose IVR flow cannot go on (tries used up with no onFailure, or a flow state that cannot be continued twice)")
	fs.StringVar(&o.outOfSessionVoice, "out-of-session-voice", decider.DefaultOutOfSession.VoiceProfile, "voice profile of the out-of-session message")
	fs.DurationVar(&o.countDelay, "session-count-delay", decider.DefaultCountDelay, "how long a session's callCount and lastCallAt may lag its connected calls, when neither maxCalls nor an idle expiry depends on them: its calls meanwhile cost one session write, not one each (sessions with maxCalls or ttlMode idle are counted at once); 0 counts every call at once")
}

// serveArchiveInserts is serve's --archive-inserts: with ClickHouse on
// the same two cores, calls at 5,000/s had a p99 of 21 to 28 ms with one
// insert in flight and 38 to 48 ms with two, in five rounds out of five
// (BENCHMARKS.md, round 2).
const serveArchiveInserts = 1

func (o *options) registerArchiver(fs *flag.FlagSet, optional bool) {
	usage := "ClickHouse native-protocol addresses, comma-separated"
	if optional {
		usage += "; empty runs without an archiver (and GET /v1/sessions/{id}/interactions answers 503)"
	}
	o.registerClickHouse(fs, archiver.DefaultAddr, usage)
	fs.StringVar(&o.clickhouseCompress, "clickhouse-compression", "lz4", "compression of inserts: lz4, zstd, or none (lz4 was faster than none even on loopback, where the client's CPU and page faults cost more than the bytes: BENCHMARKS.md)")
	fs.IntVar(&o.batchMaxRows, "batch-max-rows", archiver.DefaultMaxRows, "archiver: rows that fill a batch")
	fs.IntVar(&o.batchMaxBytes, "batch-max-bytes", archiver.DefaultMaxBytes, "archiver: record bytes that fill a batch")
	inserts := archiver.DefaultInserts
	if optional {
		inserts = serveArchiveInserts
	}
	fs.IntVar(&o.archiveInserts, "archive-inserts", inserts, "archiver: batches stored at once, each on its own ClickHouse connection, while the next is read (1 to 16); two pay when ClickHouse's CPU is the limit and it has cores of its own; serve stores one at a time, because its ClickHouse usually shares its machine, where a second insert doubled the calls' p99 (BENCHMARKS.md)")
	fs.DurationVar(&o.batchMaxAge, "batch-max-age", archiver.DefaultMaxAge, "archiver: the longest a record waits in a batch")
	fs.StringVar(&o.archiverDurable, "archiver-durable", archiver.DefaultDurable, "archiver: durable consumer shared by every archiver")
	fs.DurationVar(&o.archiverAckWait, "archiver-ack-wait", archiver.DefaultAckWait, "archiver: how long before records a stopped archiver held are redelivered to another")
	fs.IntVar(&o.archiveRetention, "archive-retention-months", 0, "archiver: calendar months of call history ClickHouse keeps, the current one included; older monthly partitions are dropped as the archiver starts and every 6 hours (on a cluster, on every shard); 0 keeps everything")
}

// registerHistory registers the ClickHouse the ingest role reads
// interactions from (GET /v1/sessions/{id}/interactions); none by default.
func (o *options) registerHistory(fs *flag.FlagSet) {
	o.registerClickHouse(fs, "", "ClickHouse native-protocol addresses, comma-separated, of the archive that GET /v1/sessions/{id}/interactions reads; empty: that route answers 503")
}

// registerClickHouse registers how to reach ClickHouse.
func (o *options) registerClickHouse(fs *flag.FlagSet, addr, usage string) {
	fs.StringVar(&o.clickhouseAddr, "clickhouse-addr", addr, usage)
	fs.StringVar(&o.clickhouseDatabase, "clickhouse-database", archiver.DefaultDatabase, "ClickHouse database of the call tables (created when missing)")
	fs.StringVar(&o.clickhouseCluster, "clickhouse-cluster", "", "ClickHouse cluster (a remote_servers name in every server's configuration) the archive lives on: the schema is applied ON CLUSTER as replicated <table>_local tables behind Distributed tables of the usual names; empty: one server")
	fs.StringVar(&o.clickhouseUser, "clickhouse-user", "default", "ClickHouse user")
	o.secretVar(fs, &o.clickhousePassword, "clickhouse-password", "ClickHouse password")
	fs.BoolVar(&o.clickhouseTLS, "clickhouse-tls", false, "connect to ClickHouse over TLS (its secure native port, usually 9440)")
	fs.StringVar(&o.clickhouseTLSCA, "clickhouse-tls-ca", "", "CA certificate file (PEM) that verifies ClickHouse; implies --clickhouse-tls")
	fs.StringVar(&o.clickhouseTLSCert, "clickhouse-tls-cert", "", "client certificate file (PEM) presented to ClickHouse; implies --clickhouse-tls")
	fs.StringVar(&o.clickhouseTLSKey, "clickhouse-tls-key", "", "private key file (PEM) of --clickhouse-tls-cert")
}

// clickhouseConfig is how to reach ClickHouse.
func (o *options) clickhouseConfig() (archiver.ClickHouseConfig, error) {
	ch := archiver.ClickHouseConfig{Addrs: list(o.clickhouseAddr), Database: o.clickhouseDatabase, Cluster: o.clickhouseCluster, Username: o.clickhouseUser, Password: o.clickhousePassword, Compression: o.clickhouseCompress}
	if o.clickhouseTLS || o.clickhouseTLSCA != "" || o.clickhouseTLSCert != "" || o.clickhouseTLSKey != "" {
		tc, err := certs.ClientConfig(o.clickhouseTLSCA, o.clickhouseTLSCert, o.clickhouseTLSKey)
		if err != nil {
			return archiver.ClickHouseConfig{}, fmt.Errorf("--clickhouse-tls-*: %w", err)
		}
		ch.TLS = tc
	}
	return ch, nil
}

func (o *options) archiverConfig() (archiver.Config, error) {
	ch, err := o.clickhouseConfig()
	if err != nil {
		return archiver.Config{}, err
	}
	return archiver.Config{
		ClickHouse: ch,
		Batch:      archiver.BatchConfig{MaxRows: o.batchMaxRows, MaxBytes: o.batchMaxBytes, MaxAge: o.batchMaxAge},
		Inserts:    o.archiveInserts,
		Stream:     o.stream,
		Durable:    o.archiverDurable,
		AckWait:    o.archiverAckWait,

		RetentionMonths: o.archiveRetention,
	}, nil
}

// connConfig is how this process connects to NATS.
func (o *options) connConfig() broker.ConnConfig {
	return broker.ConnConfig{
		URLs: o.natsURL,
		User: o.natsUser, Password: o.natsPassword, Token: o.natsToken, NKeyFile: o.natsNKey, CredsFile: o.natsCreds,
		TLSCAFile: o.natsTLSCA, TLSCertFile: o.natsTLSCert, TLSKeyFile: o.natsTLSKey,
	}
}

func (o *options) registerAdmin(fs *flag.FlagSet, addr string, api bool) {
	usage := "admin listener address: /healthz, /readyz, /metrics"
	if api {
		usage += " and the session API under /v1/"
	}
	fs.StringVar(&o.adminAddr, "admin-addr", addr, usage)
	if api {
		o.secretVar(fs, &o.adminToken, "admin-token", "bearer tokens for /v1/, comma-separated (several to rotate); each is TOKEN, for every sub-account, or TOKEN@SUB1/SUB2, for only those sub-accounts (others' sessions, numbers and settings are 404 to it; a token cannot itself hold @); required unless --admin-addr is loopback")
		fs.Float64Var(&o.adminRateLimit, "admin-rate-limit", admin.DefaultRateLimit, "requests per second one client address may make to /v1/ (past it, 429); negative: no limit")
		fs.IntVar(&o.adminRateBurst, "admin-rate-burst", admin.DefaultRateBurst, "burst of requests one client address may make to /v1/ above --admin-rate-limit")
	}
	fs.StringVar(&o.adminTLSCert, "admin-tls-cert", "", "certificate file (PEM) to serve the admin listener over TLS; reloaded on SIGHUP")
	fs.StringVar(&o.adminTLSKey, "admin-tls-key", "", "private key file (PEM) of --admin-tls-cert")
}

func (o *options) registerProcess(fs *flag.FlagSet) {
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "auto", "log format: json, text, or auto (text on a terminal, else json)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful stop may take before the process exits anyway")
	fs.StringVar(&o.pprofAddr, "pprof", "", "serve Go's pprof profiles on this loopback address (e.g. 127.0.0.1:6060); empty: off")
}

func (o *options) streamConfig() broker.StreamConfig {
	return broker.StreamConfig{Name: o.stream, MaxAge: o.streamMaxAge, MaxBytes: o.streamMaxBytes, Duplicates: o.streamDuplicates, Replicas: o.streamReplicas, SourceDomains: splitList(o.streamSources)}
}

func (o *options) sessionConfig() session.Config {
	return session.Config{Bucket: o.bucket, Replicas: o.bucketReplicas, History: o.sessionHistory, FlowRetention: o.flowRetention, MirrorDomain: o.bucketMirror}
}

func (o *options) ingestConfig() ingest.Config {
	c := ingest.Config{
		Addr:          o.httpAddr,
		MaxBody:       o.maxBody,
		DecideTimeout: o.decideTimeout,
		RecordTimeout: o.recordTimeout,
		DataDir:       o.dataDir,
		SpoolMaxBytes: o.spoolMaxBytes,
		Instance:      o.instance,

		ReadTimeout:    o.readTimeout,
		WriteTimeout:   o.writeTimeout,
		IdleTimeout:    o.idleTimeout,
		MaxHeaderBytes: o.maxHeaderBytes,
		MaxConns:       o.maxConns,
		MaxConnsPerIP:  o.maxConnsPerIP,
		Auth:           list(o.webhookAuth),
	}
	// Checked by validate.
	c.AllowCIDRs, _ = ingest.ParsePrefixes(list(o.allowCIDRs))
	c.TrustedProxies, _ = ingest.ParsePrefixes(list(o.trustedProxies))
	c.Breaker.Failures = uint32(min(o.breakerFails, 1<<31))
	c.Breaker.OpenFor = o.breakerOpenFor
	c.Breaker.HalfOpenProbes = uint32(min(o.breakerProbes, 1<<31))
	c.Fallback.Text, c.Fallback.VoiceProfile = o.fallbackText, o.fallbackVoice
	return c
}

func (o *options) deciderConfig() decider.Config {
	c := decider.Config{Version: buildVersion()}
	c.OutOfSession.Text, c.OutOfSession.VoiceProfile = o.outOfSessionText, o.outOfSessionVoice
	c.FlowEnd = decider.DefaultFlowEnd
	c.FlowEnd.Text = o.flowEndText
	c.CountDelay = o.countDelay
	if c.CountDelay == 0 {
		c.CountDelay = -1 // 0 means none here, not the package default
	}
	return c
}

func (o *options) adminConfig(sessionAPI bool) admin.Config {
	instance := o.instance
	if instance == "" {
		instance, _ = os.Hostname()
	}
	return admin.Config{
		Addr: o.adminAddr, Tokens: list(o.adminToken), SessionAPI: sessionAPI,
		RateLimit: o.adminRateLimit, RateBurst: o.adminRateBurst, Instance: instance,
	}
}

// validate checks what no package config covers: the process settings and
// the flags that only exist here.
func (o *options) validate(r node.Roles) error {
	if o.deciders < 0 {
		return fmt.Errorf("--deciders must be >= 0, got %d", o.deciders)
	}
	if o.shutdownTimeout <= 0 {
		return fmt.Errorf("--shutdown-timeout must be > 0")
	}
	if o.countDelay < 0 {
		return fmt.Errorf("--session-count-delay must be >= 0, got %s", o.countDelay)
	}
	gc, err := resolveGC(o.memoryLimit, o.gcPercent, os.Getenv, cgroupRoot)
	if err != nil {
		return err
	}
	o.gc = gc
	if o.pprofAddr != "" {
		host, _, err := net.SplitHostPort(o.pprofAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return fmt.Errorf("--pprof %q: profiles expose the process's memory; give a loopback address such as 127.0.0.1:6060", o.pprofAddr)
		}
	}
	if !r.Ingest {
		return nil
	}
	if o.breakerFails == 0 {
		return fmt.Errorf("--breaker-failures must be >= 1")
	}
	if o.breakerProbes == 0 {
		return fmt.Errorf("--breaker-half-open-probes must be >= 1")
	}
	if _, err := ingest.ParsePrefixes(list(o.allowCIDRs)); err != nil {
		return fmt.Errorf("--webhook-allow-cidrs: %w", err)
	}
	if _, err := ingest.ParsePrefixes(list(o.trustedProxies)); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	return nil
}

// logger builds the process logger: JSON by default, text on a terminal.
func (o *options) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText}
	switch o.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "auto":
		if isTerminal(w) {
			return slog.New(slog.NewTextHandler(w, hopts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want json, text or auto", o.logFormat)
	}
}

// durationsAsText writes durations as Go durations ("168h0m0s"), not as
// integers of nanoseconds, which is how slog's JSON handler writes them.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// isTerminal reports whether w is a terminal (text for people) rather than
// a pipe or a file (lines for machines).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
