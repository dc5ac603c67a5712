package bench

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url         string
		allowRemote bool
		wantRemote  bool // refused as not loopback
		wantErr     bool // refused for another reason
	}{
		{"http://127.0.0.1:8080/vca", false, false, false},
		{"http://127.1.2.3:8080/vca", false, false, false},
		{"http://localhost:8080/vca", false, false, false},
		{"http://LOCALHOST./vca", false, false, false},
		{"http://[::1]:8080/vca", false, false, false},
		{"https://127.0.0.1/vca", false, false, false},
		{"http://10.0.0.5:8080/vca", false, true, false},
		{"http://0.0.0.0:8080/vca", false, true, false},
		{"http://[::]:8080/vca", false, true, false},
		{"http://192.168.1.1/vca", false, true, false},
		{"http://example.com/vca", false, true, false},
		// A name is refused even if it resolves to loopback today.
		{"http://my-laptop:8080/vca", false, true, false},
		{"http://localhost.example.com/vca", false, true, false},
		{"http://127.0.0.1.nip.io/vca", false, true, false},
		{"http://[::ffff:10.0.0.1]/vca", false, true, false},
		{"http://10.0.0.5:8080/vca", true, false, false},
		{"http://example.com/vca", true, false, false},
		{"ftp://127.0.0.1/vca", false, false, true},
		{"127.0.0.1:8080", false, false, true},
		{"http:///vca", false, false, true},
		{"http://%zz", false, false, true},
	}
	for _, tt := range tests {
		err := CheckURL(tt.url, tt.allowRemote)
		switch {
		case tt.wantRemote && !errors.Is(err, ErrRemote):
			t.Errorf("CheckURL(%q, %v) = %v, want refused as not loopback", tt.url, tt.allowRemote, err)
		case tt.wantErr && (err == nil || errors.Is(err, ErrRemote)):
			t.Errorf("CheckURL(%q, %v) = %v, want refused as malformed", tt.url, tt.allowRemote, err)
		case !tt.wantRemote && !tt.wantErr && err != nil:
			t.Errorf("CheckURL(%q, %v) = %v, want accepted", tt.url, tt.allowRemote, err)
		}
	}
}

func validConfig() Config {
	return Config{
		URL: DefaultURL, Rate: 100, Duration: time.Second, Connections: 4, Timeout: time.Second,
		Sessions: 10, AdminURL: DefaultAdminURL, Mix: DefaultMix, ReportEvery: time.Second, AuditWait: time.Second,
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"valid", func(*Config) {}, ""},
		{"closed loop", func(c *Config) { c.Rate = 0 }, ""},
		{"remote url", func(c *Config) { c.URL = "http://10.1.1.1:8080/vca" }, "--url"},
		{"remote url allowed", func(c *Config) { c.URL = "http://10.1.1.1:8080/vca"; c.AllowRemote = true }, ""},
		{"remote admin url", func(c *Config) { c.AdminURL = "http://10.1.1.1:8081" }, "--admin-url"},
		{"remote admin url without sessions", func(c *Config) { c.AdminURL = "http://10.1.1.1:8081"; c.Sessions = 0 }, ""},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "--rate"},
		{"no duration", func(c *Config) { c.Duration = 0 }, "--duration"},
		{"no connections", func(c *Config) { c.Connections = 0 }, "--connections"},
		{"no timeout", func(c *Config) { c.Timeout = 0 }, "--timeout"},
		{"too many sessions", func(c *Config) { c.Sessions = MaxSessions + 1 }, "--sessions"},
		{"session ttl not whole seconds", func(c *Config) { c.SessionTTL = 1500 * time.Millisecond }, "--session-ttl 1.5s: give whole seconds"},
		{"session ttl of whole seconds", func(c *Config) { c.SessionTTL = 90 * time.Second }, ""},
		{"rate too low for the duration", func(c *Config) { c.Rate = 0.5 }, "schedules no request"},
		{"negative mix", func(c *Config) { c.Mix.Status = -1 }, "--mix-status"},
		{"empty mix", func(c *Config) { c.Mix = Mix{} }, "add up to 0"},
		{"soak needs a rate", func(c *Config) { c.Soak = true; c.Rate = 0 }, "--soak"},
		{"bad run id", func(c *Config) { c.RunID = "a-b" }, "--run-id"},
		{"bad database", func(c *Config) { c.Audit = true; c.ClickHouseAddr = "x:9000"; c.ClickHouseDatabase = "a;drop" }, "--clickhouse-database"},
		{"bad pid", func(c *Config) { c.PIDs = []int{0} }, "--pids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
	c := validConfig()
	c.Soak = true
	if err := c.Validate(); err != nil || !c.Audit || c.NATSURL != DefaultNATSURL || c.Stream != DefaultStream {
		t.Errorf("soak: %v, audit %v, nats %q, stream %q", err, c.Audit, c.NATSURL, c.Stream)
	}
}

// TestSessionTTLWholeSeconds: the lifetime sent for the sessions is whole
// seconds, raised (rounded up) to outlast the run, never cut.
func TestSessionTTLWholeSeconds(t *testing.T) {
	tests := []struct {
		cfg  Config
		want time.Duration
	}{
		{Config{SessionTTL: time.Hour, Duration: time.Second}, time.Hour},
		{Config{SessionTTL: 0, Duration: time.Hour}, 0},
		{Config{SessionTTL: time.Second, Duration: 1500 * time.Millisecond, Drain: 250 * time.Millisecond}, 10*time.Minute + 4*time.Second},
	}
	for _, tt := range tests {
		if got := sessionTTL(tt.cfg); got != tt.want || got%time.Second != 0 {
			t.Errorf("sessionTTL(ttl %v, duration %v, drain %v) = %v, want %v", tt.cfg.SessionTTL, tt.cfg.Duration, tt.cfg.Drain, got, tt.want)
		}
	}
}
