package cdn_test

import (
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/seeder/cdn"
	"github.com/meshcast/meshcast/seeder/cdn/cdntest"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

// testHTTPSWithClientCert serves the origin over HTTPS that requires a
// client certificate: the right CA and certificate fetch; no certificate,
// an unknown CA or plain HTTP fail with an error that says why.
func testHTTPSWithClientCert(t *testing.T, base *fixture) {
	f := base.copyOf(t)
	pki := cdntest.NewPKI(t)
	_, url := cdntest.ServeTLS(t, devserver.Config{Dir: f.o.Dir}, pki.Server())

	t.Run("client cert", func(t *testing.T) {
		cfg := cdntest.ClientConfig(url)
		cfg.TLS = pki.Client()
		c := cdntest.NewClient(t, cfg)
		opt := fetchOpts(t, f, "1.0.0")
		res := mustFetch(t, c, opt)
		cdntest.RequireSameTree(t, f.tree, opt.Out)
		if res.BytesFromCDN < res.ChunkBytes {
			t.Errorf("read %d bytes from the CDN, less than the %d chunk bytes", res.BytesFromCDN, res.ChunkBytes)
		}
	})
	t.Run("no client cert", func(t *testing.T) {
		cfg := cdntest.ClientConfig(url)
		cfg.TLS = pki.ClientWithoutCert()
		cfg.Attempts = 2
		c := cdntest.NewClient(t, cfg)
		opt := fetchOpts(t, f, "1.0.0")
		_, err := directFetch(t, c, opt)
		// Over HTTP/1.1 the server's alert shows; over HTTP/2 net/http
		// hides it, and the client says what it saw instead.
		if err == nil || !strings.Contains(err.Error(), "client certificate, and none is configured") {
			t.Fatalf("fetch without a client cert: %v, want it to say that a client certificate is missing", err)
		}
		t.Logf("as expected: %v", err)
		requireNotExist(t, opt.Out)
	})
	t.Run("unknown CA", func(t *testing.T) {
		cfg := cdntest.ClientConfig(url)
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{pki.ClientCert}} // system roots
		c := cdntest.NewClient(t, cfg)
		opt := fetchOpts(t, f, "1.0.0")
		_, err := directFetch(t, c, opt)
		var cv *tls.CertificateVerificationError
		if !errors.As(err, &cv) {
			t.Fatalf("fetch from a server of an unknown CA: %v, want a CertificateVerificationError", err)
		}
		// Asking again gets the same certificate: no retries.
		if n := c.Requests(); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
		requireNotExist(t, opt.Out)
	})
	t.Run("plain HTTP client", func(t *testing.T) {
		c := cdntest.NewClient(t, cdntest.ClientConfig(strings.Replace(url, "https:", "http:", 1)))
		opt := fetchOpts(t, f, "1.0.0")
		_, err := directFetch(t, c, opt)
		// net/http answers a plain request on a TLS port with a 400.
		var he *cdn.HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusBadRequest {
			t.Fatalf("plain HTTP to an HTTPS origin: %v, want a 400", err)
		}
		if n := c.Requests(); n != 1 {
			t.Errorf("%d requests, want 1: a 400 is not retried", n)
		}
	})
}
