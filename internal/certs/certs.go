// Package certs serves a listener's TLS certificate from files that can be
// replaced while the process runs: Reload (on SIGHUP) reads them again, and
// new handshakes use the new pair. A pair that fails to load leaves the
// current one in place.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// ErrIncomplete means only one of the certificate and key files was given.
var ErrIncomplete = errors.New("certs: a certificate needs both its certificate file and its key file")

// Reloader holds the certificate of one listener.
type Reloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// New loads the pair; both empty returns nil (no TLS).
func New(certFile, keyFile string) (*Reloader, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, ErrIncomplete
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again. On error the certificate in use stays.
func (r *Reloader) Reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("certs: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&c)
	return nil
}

// Files names the certificate and key files.
func (r *Reloader) Files() (cert, key string) { return r.certFile, r.keyFile }

// TLSConfig is a server configuration serving the current certificate,
// TLS 1.2 at least.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cert.Load(), nil
		},
	}
}

// ClientConfig is a client TLS configuration: caFile (PEM) verifies the
// server instead of the system roots when given; certFile and keyFile
// present a client certificate when given (both or neither).
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("certs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("certs: %s holds no PEM certificate", caFile)
		}
		c.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, ErrIncomplete
		}
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("certs: load %s and %s: %w", certFile, keyFile, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
