package api

import (
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/mesh/exchange"
)

// Status is what a node reports about itself.
type Status struct {
	ID      string          `json:"id"`
	Site    string          `json:"site"`
	Role    gossip.Role     `json:"role"`
	Release content.Release `json:"release,omitzero"` // being staged
	Phase   deploy.Phase    `json:"phase"`            // where the node stands with it: idle, fetching, verified, activating, active, healthy, failed, rolled-back
	// Running is the release that runs on the node.
	Running content.Release `json:"running,omitzero"`
	// Activations count the node's activations and rollbacks by outcome
	// (deploy.AgentState.Outcomes).
	Activations map[string]int64 `json:"activations,omitempty"`
	Have        int              `json:"have"`
	Total       int              `json:"total"`
	Peers       int              `json:"peers"`
	// BytesFromCDN counts the seeder's CDN traffic (wire bytes, metadata
	// polling included); ChunksFromCDN and ChunkBytesFromCDN the chunks it
	// fetched.
	BytesFromCDN      int64          `json:"bytes_from_cdn"`
	ChunksFromCDN     int64          `json:"chunks_from_cdn"`
	ChunkBytesFromCDN int64          `json:"chunk_bytes_from_cdn"`
	Exchange          exchange.Stats `json:"exchange"`
	DoneAt            time.Time      `json:"done_at,omitzero"`
	// Err is the node's latest failure (staging, leading, joining).
	Err string `json:"error,omitempty"`
	// SiteView is this node's view of its site, when it takes part in
	// the site's gossip.
	SiteView *SiteStatus `json:"site_view,omitempty"`
}

// SiteStatus is a node's view of its site.
type SiteStatus struct {
	Leader string          `json:"leader,omitempty"` // peer id of the active seeder
	Term   uint64          `json:"term,omitempty"`
	Target content.Release `json:"target,omitzero"` // the release the site stages
	// Running is the release whose rollout last completed, as the
	// site's Raft state says.
	Running content.Release `json:"running,omitzero"`
	// RolloutState is the state of the target's rollout: staged until it
	// starts, then the rollout's (wave-open, done, rolled-back, …).
	RolloutState deploy.RolloutState `json:"rollout_state,omitempty"`
	// Rollout is the target's rollout, its waves with their members and
	// gate results, once it started.
	Rollout *deploy.Rollout `json:"rollout,omitempty"`
	Members []MemberStatus  `json:"members"`
	// GossipHealth is memberlist's health score: 0 is healthy.
	GossipHealth int `json:"gossip_health"`
	// Raft is the Raft state of a seeder: leader, follower, candidate.
	Raft string `json:"raft,omitempty"`
}

// MemberStatus is what a node knows of one member of its site.
type MemberStatus struct {
	ID       string          `json:"id"`
	Addr     string          `json:"addr"`
	Role     gossip.Role     `json:"role"`
	Platform string          `json:"platform"`
	Running  content.Release `json:"running,omitzero"`
	Staged   content.Release `json:"staged,omitzero"`
	Phase    deploy.Phase    `json:"phase"`
	Progress float64         `json:"progress"` // 0..1 of the staged release held
	Health   string          `json:"health"`
	Leader   bool            `json:"leader,omitempty"`
	State    string          `json:"state"` // alive, suspect
}
