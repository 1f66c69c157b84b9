package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshcast/meshcast/deploy"
)

// Node is what the Handler needs of a node.
type Node interface {
	// Status returns the node's status, its site view included.
	Status() Status
	// RemoveSeeder removes a dead seeder from the site's Raft; only the
	// leader can.
	RemoveSeeder(ctx context.Context, id string) error
	// Rollout carries an operator's command (pause, resume, abort) for
	// the site's rollout to its leader.
	Rollout(ctx context.Context, op deploy.CommandOp, reason string) error
}

// removeTimeout bounds a removal's wait for Raft.
const removeTimeout = 10 * time.Second

// Handler serves the API of n (see the package documentation).
func Handler(n Node) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(n.Status())
	})
	mux.HandleFunc("POST /v1/seeders/remove", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		if id == "" {
			http.Error(w, "missing ?id=PEER_ID", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), removeTimeout)
		defer cancel()
		if err := n.RemoveSeeder(ctx, id); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprintf(w, "removed %s from the site's raft\n", id)
	})
	mux.HandleFunc("POST /v1/rollout/{op}", func(w http.ResponseWriter, r *http.Request) {
		op := deploy.CommandOp(r.PathValue("op"))
		switch op {
		case deploy.OpPause, deploy.OpResume, deploy.OpAbort:
		default:
			http.Error(w, fmt.Sprintf("unknown rollout command %q: want pause, resume or abort", op), http.StatusNotFound)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), removeTimeout)
		defer cancel()
		if err := n.Rollout(ctx, op, r.URL.Query().Get("reason")); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprintf(w, "rollout %s: done\n", op)
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{n}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// Listen listens on addr for the API: "host:port", or "unix:/path" for a
// unix socket (a stale socket file from an earlier run is replaced).
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}
