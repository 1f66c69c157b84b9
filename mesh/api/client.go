package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls a node's API.
type Client struct {
	addr string // as given, for errors
	base string // URL of the API's root
	hc   *http.Client
}

// clientTimeout bounds one call; a removal waits for Raft up to
// removeTimeout on the other side.
const clientTimeout = removeTimeout + 5*time.Second

// maxAnswer bounds what the client reads of an answer.
const maxAnswer = 16 << 20

// NewClient returns a client of the API at addr: "host:port", or
// "unix:/path" for a unix socket.
func NewClient(addr string) *Client {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return &Client{addr: addr, base: "http://meshcast", hc: &http.Client{Timeout: clientTimeout, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		}}}
	}
	return &Client{addr: addr, base: "http://" + addr, hc: &http.Client{Timeout: clientTimeout}}
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	body, err := c.do(ctx, http.MethodGet, "/v1/status")
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("status from %s: %w", c.addr, err)
	}
	return &st, nil
}

// RemoveSeeder asks the node, which must lead the site, to remove a dead
// seeder from the site's Raft, and returns its one-line answer.
func (c *Client) RemoveSeeder(ctx context.Context, id string) (string, error) {
	body, err := c.do(ctx, http.MethodPost, "/v1/seeders/remove?id="+url.QueryEscape(id))
	if err != nil {
		return "", fmt.Errorf("seeder remove: %w", err)
	}
	return string(body), nil
}

// Rollout asks the node to carry an operator's command for the site's
// rollout (pause, resume, abort) to the site's leader, and returns its
// one-line answer.
func (c *Client) Rollout(ctx context.Context, op, reason string) (string, error) {
	body, err := c.do(ctx, http.MethodPost, "/v1/rollout/"+url.PathEscape(op)+"?reason="+url.QueryEscape(reason))
	if err != nil {
		return "", fmt.Errorf("rollout %s: %w", op, err)
	}
	return string(body), nil
}

// do makes one call and returns the answer's body, or an error that says
// what the node answered.
func (c *Client) do(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is a meshcast node running with --api %s? %w", c.addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s: %s", c.addr, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}
