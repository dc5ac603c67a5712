package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/testcert"
)

// authority is a CA that issues certificates for 127.0.0.1, its
// certificate written to file.
type authority struct {
	testcert.Pair
	file string
}

func newAuthority(t *testing.T, name string) *authority {
	t.Helper()
	a := &authority{Pair: testcert.NewCA(t, name), file: filepath.Join(t.TempDir(), "ca.pem")}
	a.WriteCert(t, a.file)
	return a
}

// issue writes a leaf signed by a into dir as name.pem and name-key.pem.
func (a *authority) issue(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	leaf := a.Issue(t, name, usage)
	certFile, keyFile = leaf.WriteIn(t, dir, name)
	return certFile, keyFile, leaf.Cert
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// served is the certificate the Reloader hands to a new handshake.
func served(t *testing.T, r *Reloader) *x509.Certificate {
	t.Helper()
	c, err := r.TLSConfig().GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || c == nil {
		t.Fatalf("GetCertificate: %v, %v", c, err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// TestNew proves New's contract: neither file means no TLS (nil, nil);
// only one of them is ErrIncomplete; both load the pair; missing,
// unreadable or mismatched files are an error, never a Reloader without a
// certificate.
func TestNew(t *testing.T) {
	ca := newAuthority(t, "ca")
	dir := t.TempDir()
	certFile, keyFile, leaf := ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	_, otherKey, _ := ca.issue(t, dir, "other", x509.ExtKeyUsageServerAuth)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		name       string
		cert, key  string
		wantNil    bool // no TLS
		wantErr    bool
		incomplete bool
	}{
		{name: "neither file", wantNil: true},
		{name: "certificate only", cert: certFile, wantErr: true, incomplete: true},
		{name: "key only", key: keyFile, wantErr: true, incomplete: true},
		{name: "both", cert: certFile, key: keyFile},
		{name: "missing certificate", cert: missing, key: keyFile, wantErr: true},
		{name: "missing key", cert: certFile, key: missing, wantErr: true},
		{name: "garbage certificate", cert: garbage, key: keyFile, wantErr: true},
		{name: "the key of another certificate", cert: certFile, key: otherKey, wantErr: true},
		{name: "files swapped", cert: keyFile, key: certFile, wantErr: true},
		{name: "a directory", cert: dir, key: keyFile, wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := New(c.cert, c.key)
			switch {
			case c.wantNil:
				if r != nil || err != nil {
					t.Fatalf("New = %v, %v; want nil, nil (no TLS)", r, err)
				}
			case c.wantErr:
				if err == nil || r != nil {
					t.Fatalf("New = %v, %v; want an error and no Reloader", r, err)
				}
				if c.incomplete != errors.Is(err, ErrIncomplete) {
					t.Errorf("errors.Is(%v, ErrIncomplete) = %v, want %v", err, !c.incomplete, c.incomplete)
				}
			default:
				if err != nil || r == nil {
					t.Fatalf("New = %v, %v", r, err)
				}
				if got := served(t, r); !got.Equal(leaf) {
					t.Errorf("serves %s, want %s", got.Subject, leaf.Subject)
				}
				if cf, kf := r.Files(); cf != c.cert || kf != c.key {
					t.Errorf("Files() = %s, %s", cf, kf)
				}
			}
		})
	}
}

// TestReload proves that Reload picks up a replaced pair for new
// handshakes, and that a pair that does not load (garbage, a missing
// file, a key that does not match, only one of the two files replaced)
// is an error that leaves the certificate in use in place.
func TestReload(t *testing.T) {
	ca := newAuthority(t, "ca")
	dir := t.TempDir()
	certFile, keyFile, first := ca.issue(t, dir, "first", x509.ExtKeyUsageServerAuth)
	r, err := New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	next := t.TempDir()
	secondCert, secondKey, second := ca.issue(t, next, "second", x509.ExtKeyUsageServerAuth)
	thirdCert, _, _ := ca.issue(t, next, "third", x509.ExtKeyUsageServerAuth)

	steps := []struct {
		name    string
		change  func(t *testing.T)
		wantErr bool
		want    *x509.Certificate
	}{
		{"unchanged files", func(*testing.T) {}, false, first},
		{"garbage key", func(t *testing.T) {
			if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, true, first},
		{"missing certificate", func(t *testing.T) {
			if err := os.Remove(certFile); err != nil {
				t.Fatal(err)
			}
		}, true, first},
		{"only the certificate replaced", func(t *testing.T) {
			copyFile(t, secondCert, certFile)
		}, true, first},
		{"new pair", func(t *testing.T) {
			copyFile(t, secondKey, keyFile)
		}, false, second},
		{"certificate of another key", func(t *testing.T) {
			copyFile(t, thirdCert, certFile)
		}, true, second},
		{"empty files", func(t *testing.T) {
			for _, f := range []string{certFile, keyFile} {
				if err := os.WriteFile(f, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}, true, second},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.change(t)
			err := r.Reload()
			if (err != nil) != s.wantErr {
				t.Fatalf("Reload() = %v, want error %v", err, s.wantErr)
			}
			if got := served(t, r); !got.Equal(s.want) {
				t.Errorf("serves %s, want %s", got.Subject.CommonName, s.want.Subject.CommonName)
			}
		})
	}
}

// TestServedOverTLS proves on a real listener that a client trusting the
// CA completes a handshake and sees the current certificate, sees the new
// one after Reload, and that TLS 1.1 and older are refused.
func TestServedOverTLS(t *testing.T) {
	ca := newAuthority(t, "ca")
	dir := t.TempDir()
	certFile, keyFile, first := ca.issue(t, dir, "first", x509.ExtKeyUsageServerAuth)
	r, err := New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.WriteString(c, "hello")
			}()
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	dial := func(cfg *tls.Config) (*x509.Certificate, error) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0], nil
	}
	if got, err := dial(&tls.Config{RootCAs: pool}); err != nil || !got.Equal(first) {
		t.Fatalf("handshake: %v, %v; want the first certificate", got, err)
	}
	if _, err := dial(&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Errorf("a TLS 1.1 handshake succeeded")
	}
	if _, err := dial(&tls.Config{}); err == nil {
		t.Errorf("a client without the CA trusted the certificate")
	}
	secondCert, secondKey, second := ca.issue(t, t.TempDir(), "second", x509.ExtKeyUsageServerAuth)
	copyFile(t, secondCert, certFile)
	copyFile(t, secondKey, keyFile)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, err := dial(&tls.Config{RootCAs: pool}); err != nil || !got.Equal(second) {
		t.Fatalf("after Reload: %v, %v; want the second certificate", got, err)
	}
}

// TestClientConfig proves ClientConfig: nothing given is a TLS 1.2+
// configuration on the system roots; a CA file verifies servers it signed
// and refuses others; a client pair is presented and accepted by a server
// that requires client certificates; missing, non-PEM or mismatched files,
// and a certificate without its key, are errors.
func TestClientConfig(t *testing.T) {
	ca := newAuthority(t, "ca")
	other := newAuthority(t, "other")
	dir := t.TempDir()
	serverCert, serverKey, _ := ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey, client := ca.issue(t, dir, "client", x509.ExtKeyUsageClientAuth)
	otherServerCert, otherServerKey, _ := other.issue(t, dir, "other-server", x509.ExtKeyUsageServerAuth)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("no certificate here"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	// serve runs a TLS server with the given pair that requires a client
	// certificate from ca when requireClient; it returns its address and
	// the client certificate it saw (after a handshake).
	serve := func(t *testing.T, certFile, keyFile string, requireClient bool) (string, <-chan *x509.Certificate) {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		if requireClient {
			pool := x509.NewCertPool()
			pool.AddCert(ca.Cert)
			cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		seen := make(chan *x509.Certificate, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if err := c.(*tls.Conn).Handshake(); err == nil {
				if pc := c.(*tls.Conn).ConnectionState().PeerCertificates; len(pc) > 0 {
					seen <- pc[0]
				}
				_, _ = io.WriteString(c, "ok")
			}
			close(seen)
		}()
		return ln.Addr().String(), seen
	}
	handshake := func(addr string, cfg *tls.Config) error {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3 reports a refused client certificate on the first read.
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)
		return err
	}

	t.Run("nothing given", func(t *testing.T) {
		c, err := ClientConfig("", "", "")
		if err != nil || c.RootCAs != nil || len(c.Certificates) != 0 || c.MinVersion < tls.VersionTLS12 || c.InsecureSkipVerify {
			t.Fatalf("ClientConfig = %+v, %v", c, err)
		}
	})
	t.Run("CA verifies the servers it signed", func(t *testing.T) {
		c, err := ClientConfig(ca.file, "", "")
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := serve(t, serverCert, serverKey, false)
		if err := handshake(addr, c.Clone()); err != nil {
			t.Errorf("handshake with a server of the CA: %v", err)
		}
		addr, _ = serve(t, otherServerCert, otherServerKey, false)
		if err := handshake(addr, c.Clone()); err == nil {
			t.Errorf("a server of another CA was trusted")
		}
	})
	t.Run("client pair is presented", func(t *testing.T) {
		c, err := ClientConfig(ca.file, clientCert, clientKey)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Certificates) != 1 {
			t.Fatalf("%d client certificates, want 1", len(c.Certificates))
		}
		addr, seen := serve(t, serverCert, serverKey, true)
		if err := handshake(addr, c.Clone()); err != nil {
			t.Fatalf("handshake with a client certificate: %v", err)
		}
		if got := <-seen; got == nil || !got.Equal(client) {
			t.Errorf("server saw client certificate %v, want %s", got, client.Subject)
		}
		// Without the pair, the same server refuses the client.
		noPair, _ := ClientConfig(ca.file, "", "")
		addr, _ = serve(t, serverCert, serverKey, true)
		if err := handshake(addr, noPair); err == nil {
			t.Errorf("a server requiring client certificates accepted a client without one")
		}
	})
	bad := []struct {
		name            string
		ca, cert, key   string
		wantIncomplete  bool
		mustNameTheFile string
	}{
		{name: "missing CA file", ca: missing, mustNameTheFile: missing},
		{name: "CA file without PEM", ca: notPEM, mustNameTheFile: notPEM},
		{name: "CA file is a key", ca: clientKey},
		{name: "certificate without key", cert: clientCert, wantIncomplete: true},
		{name: "key without certificate", key: clientKey, wantIncomplete: true},
		{name: "missing certificate", cert: missing, key: clientKey},
		{name: "mismatched pair", cert: clientCert, key: serverKey},
		{name: "garbage pair", cert: notPEM, key: notPEM},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			c, err := ClientConfig(b.ca, b.cert, b.key)
			if err == nil || c != nil {
				t.Fatalf("ClientConfig = %v, %v; want an error", c, err)
			}
			if b.wantIncomplete && !errors.Is(err, ErrIncomplete) {
				t.Errorf("error %v, want ErrIncomplete", err)
			}
			if b.mustNameTheFile != "" && !strings.Contains(err.Error(), b.mustNameTheFile) {
				t.Errorf("error %v does not name %s", err, b.mustNameTheFile)
			}
		})
	}
}
