package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// checks returns a health check that answers from results, healthy
// after them, and counts its calls.
func checks(results ...error) (healthCheck, *int) {
	n := new(int)
	return func(context.Context) error {
		*n++
		if *n <= len(results) {
			return results[*n-1]
		}
		return nil
	}, n
}

var errDown = errors.New("down")

// TestSoak runs the health window in a bubble, where time is exact.
func TestSoak(t *testing.T) {
	for _, c := range []struct {
		name    string
		results []error
		p       Policy
		checks  int
		took    time.Duration
		err     string // "" healthy
	}{
		{"healthy at once, no soak", nil, Policy{HealthTimeout: time.Minute}, 1, 0, ""},
		{"healthy after 2 failures, 10 s soak", []error{errDown, errDown}, Policy{Soak: 10 * time.Second, HealthTimeout: time.Minute},
			8, 14 * time.Second, ""},
		{"never healthy", []error{errDown, errDown, errDown, errDown, errDown, errDown}, Policy{HealthTimeout: 7 * time.Second},
			5, 7 * time.Second, "no check passed within the health timeout of 7s (5 checks); the last: down"},
		{"unhealthy inside the soak", []error{errDown, nil, nil, errDown}, Policy{Soak: time.Minute, HealthTimeout: time.Minute},
			4, 6 * time.Second, "check 4 failed 4s after the first healthy one: down"},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				check, n := checks(c.results...)
				start := time.Now()
				err := soak(t.Context(), check, c.p, 2*time.Second, start)
				took := time.Since(start)
				switch {
				case c.err == "" && err != nil:
					t.Errorf("soak: %v; want healthy", err)
				case c.err != "" && (!errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), c.err)):
					t.Errorf("soak: %v; want ErrUnhealthy saying %q", err, c.err)
				}
				if *n != c.checks || took != c.took {
					t.Errorf("%d checks in %v; want %d in %v", *n, took, c.checks, c.took)
				}
			})
		})
	}
}

func TestSoakCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		check, _ := checks()
		go func() {
			time.Sleep(5 * time.Second) // inside the soak
			cancel()
		}()
		err := soak(ctx, check, Policy{Soak: time.Minute, HealthTimeout: time.Minute}, 2*time.Second, time.Now())
		if !errors.Is(err, context.Canceled) {
			t.Errorf("soak: %v; want context.Canceled", err)
		}
	})
}
