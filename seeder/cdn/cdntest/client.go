package cdntest

import (
	"testing"
	"time"

	"github.com/meshcast/meshcast/seeder/cdn"
)

// ClientConfig is a client configuration for tests of faults: backoffs of
// milliseconds and a short idle timeout, so retries cost little time.
func ClientConfig(url string) cdn.ClientConfig {
	return cdn.ClientConfig{
		URL:         url,
		IdleTimeout: 2 * time.Second,
		BackoffMin:  time.Millisecond,
		BackoffMax:  10 * time.Millisecond,
	}
}

// NewClient returns a client for cfg that logs to t and releases its
// connections when the test ends.
func NewClient(t testing.TB, cfg cdn.ClientConfig) *cdn.Client {
	t.Helper()
	c, err := cdn.NewClient(cfg, Logger(t, "client"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
