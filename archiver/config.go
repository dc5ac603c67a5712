package archiver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid archiver config")

// ClickHouseConfig says how to reach ClickHouse.
type ClickHouseConfig struct {
	// Addrs are host:port addresses of the native protocol.
	Addrs []string
	// Database holds callflow's tables; it is created when missing.
	Database string
	// Username and Password authenticate (default user, no password when
	// empty).
	Username, Password string
	// PasswordFunc, when set, is asked for the password each time the
	// pool opens a connection, instead of Password: a rotated password
	// then applies without a restart (connections already open stay).
	PasswordFunc func() string
	// TLS, when set, connects over TLS (ClickHouse's tcp_port_secure).
	TLS *tls.Config
	// DialTimeout bounds connecting; QueryTimeout bounds one statement.
	DialTimeout, QueryTimeout time.Duration
	// Cluster, when set, is the ClickHouse cluster (a remote_servers
	// entry of every server's configuration) the archive lives on: the
	// schema is applied ON CLUSTER as replicated local tables behind
	// Distributed tables (see ClusterSchema), and inserts wait until every
	// shard has its rows (insert_distributed_sync). Empty: one server.
	Cluster string
	// Compression of inserted blocks: "lz4" (default; saves network
	// bandwidth), "zstd", or "none" (fastest when ClickHouse is on the same
	// machine or a fast LAN: compression costs the client CPU).
	Compression string
}

// BatchConfig says when a batch is sent: whichever limit is reached first.
type BatchConfig struct {
	// MaxRows is the most rows in one insert.
	MaxRows int
	// MaxBytes is the most record bytes in one insert.
	MaxBytes int
	// MaxAge is the longest a record waits in a batch before it is sent.
	MaxAge time.Duration
}

// Config configures an Archiver.
type Config struct {
	ClickHouse ClickHouseConfig
	Batch      BatchConfig
	// Stream is the records stream.
	Stream string
	// Durable is the consumer every archiver shares.
	Durable string
	// AckWait is how long JetStream waits for an ack before redelivering.
	AckWait time.Duration
	// Inserts is how many batches are stored at once, each on a
	// connection of its own, while the next batch is read (default 2;
	// see inserts). The durable consumer lets Inserts+1 batches be
	// unacknowledged at once.
	Inserts int
	// RetentionMonths, when > 0, is how many calendar months of history
	// the archive keeps (the current one included): every retentionEvery
	// the archiver drops the monthly partitions older than that. 0 keeps
	// everything.
	RetentionMonths int
	// RetryMin and RetryMax bound the backoff while ClickHouse is down.
	RetryMin, RetryMax time.Duration
	// Logger receives notable events; never one line per record.
	Logger *slog.Logger
	// Metrics receives the measurements (see NewMetrics); nil keeps them
	// unregistered.
	Metrics *Metrics
}

// Defaults for Config.
const (
	DefaultAddr     = "127.0.0.1:9000"
	DefaultDatabase = "callflow"
	DefaultDurable  = "archiver"
	DefaultMaxRows  = 20000
	DefaultMaxBytes = 16 << 20
	DefaultMaxAge   = 500 * time.Millisecond
	DefaultAckWait  = 30 * time.Second
	DefaultInserts  = 2
)

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

func setDefault(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

func (c *ClickHouseConfig) setDefaults() {
	if len(c.Addrs) == 0 {
		c.Addrs = []string{DefaultAddr}
	}
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	setDefault(&c.DialTimeout, 5*time.Second)
	if c.Compression == "" {
		c.Compression = "lz4"
	}
	setDefault(&c.QueryTimeout, 60*time.Second)
}

// validate checks the ClickHouse settings after defaults are applied.
func (c *ClickHouseConfig) validate() error {
	switch {
	case !identifier.MatchString(c.Database):
		return fmt.Errorf("%w: clickhouse database %q must be an identifier ([A-Za-z_][A-Za-z0-9_]*)", ErrInvalidConfig, c.Database)
	case c.Cluster != "" && !identifier.MatchString(c.Cluster):
		return fmt.Errorf("%w: clickhouse cluster %q must be an identifier ([A-Za-z_][A-Za-z0-9_]*)", ErrInvalidConfig, c.Cluster)
	case c.Compression != "lz4" && c.Compression != "zstd" && c.Compression != "none":
		return fmt.Errorf("%w: clickhouse compression %q: want lz4, zstd or none", ErrInvalidConfig, c.Compression)
	}
	for _, a := range c.Addrs {
		if a == "" {
			return fmt.Errorf("%w: empty clickhouse address", ErrInvalidConfig)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	def := setDefault
	c.ClickHouse.setDefaults()
	if c.Batch.MaxRows == 0 {
		c.Batch.MaxRows = DefaultMaxRows
	}
	if c.Batch.MaxBytes == 0 {
		c.Batch.MaxBytes = DefaultMaxBytes
	}
	def(&c.Batch.MaxAge, DefaultMaxAge)
	if c.Stream == "" {
		c.Stream = "CALLS"
	}
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	def(&c.AckWait, DefaultAckWait)
	if c.Inserts == 0 {
		c.Inserts = DefaultInserts
	}
	def(&c.RetryMin, 200*time.Millisecond)
	def(&c.RetryMax, 15*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
}

// Validate checks the configuration after defaults are applied.
func (c *Config) Validate() error {
	if err := c.ClickHouse.validate(); err != nil {
		return err
	}
	switch {
	case c.Batch.MaxRows < 1:
		return fmt.Errorf("%w: batch max rows must be >= 1", ErrInvalidConfig)
	case c.Batch.MaxBytes < 1024:
		return fmt.Errorf("%w: batch max bytes must be >= 1024", ErrInvalidConfig)
	case c.Batch.MaxAge <= 0:
		return fmt.Errorf("%w: batch max age must be > 0", ErrInvalidConfig)
	case c.AckWait < 3*c.Batch.MaxAge || c.AckWait < time.Second:
		return fmt.Errorf("%w: ack wait %s must be at least 1s and 3x the batch max age", ErrInvalidConfig, c.AckWait)
	case c.Inserts < 1 || c.Inserts > 16:
		return fmt.Errorf("%w: inserts in flight must be 1 to 16, got %d", ErrInvalidConfig, c.Inserts)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("%w: retry backoff must satisfy 0 < min <= max", ErrInvalidConfig)
	case c.Durable == "" || c.Stream == "":
		return fmt.Errorf("%w: stream and durable names are required", ErrInvalidConfig)
	case c.RetentionMonths < 0 || c.RetentionMonths > 1200:
		return fmt.Errorf("%w: retention months must be 0 (keep everything) to 1200, got %d", ErrInvalidConfig, c.RetentionMonths)
	}
	return nil
}
