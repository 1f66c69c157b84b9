package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// httpProbeTimeout bounds one request to ActivatorConfig.HealthURL.
const httpProbeTimeout = 5 * time.Second

// ErrUnhealthy means a release did not prove healthy: it never passed a
// check within its health timeout, or it failed one after it had passed.
var ErrUnhealthy = errors.New("release not healthy")

// healthCheck checks a release once: nil when it is healthy.
type healthCheck func(ctx context.Context) error

// soak checks a release every interval until it has been healthy for
// p.Soak (Soak 0: one healthy check), and fails with ErrUnhealthy when
// no check passes within p.HealthTimeout of start (the switch) or one
// fails after the first that passed. The first check runs whatever the
// time. It returns ctx's error when ctx ends first.
func soak(ctx context.Context, check healthCheck, p Policy, interval time.Duration, start time.Time) error {
	var healthySince time.Time
	checks := 0
	for {
		err := check(ctx)
		checks++
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		now := time.Now()
		switch {
		case err == nil && healthySince.IsZero():
			healthySince = now
		case err != nil && !healthySince.IsZero():
			return fmt.Errorf("%w: check %d failed %v after the first healthy one: %w",
				ErrUnhealthy, checks, now.Sub(healthySince).Round(time.Millisecond), err)
		case err != nil && now.Sub(start) >= p.HealthTimeout:
			return fmt.Errorf("%w: no check passed within the health timeout of %v (%d checks); the last: %w",
				ErrUnhealthy, p.HealthTimeout, checks, err)
		}
		if !healthySince.IsZero() && now.Sub(healthySince) >= p.Soak {
			return nil
		}
		wait := interval
		if healthySince.IsZero() {
			// The last check comes at the deadline, not after it.
			wait = max(min(interval, p.HealthTimeout-now.Sub(start)), 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// probeHTTP checks url: a 2xx answer within httpProbeTimeout is healthy.
func probeHTTP(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, httpProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health probe %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health probe: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health probe %s: %s", url, resp.Status)
	}
	return nil
}

// newProbeClient is the HTTP client of health probes: no connection is
// kept between them, so none outlives an activation.
func newProbeClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
}
