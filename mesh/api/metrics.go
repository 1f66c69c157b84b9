package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshcast/meshcast/deploy"
)

// collector is the Prometheus collector of a node's figures, read from one
// Status snapshot per scrape.
type collector struct{ n Node }

var (
	descBytesFromCDN   = prometheus.NewDesc("meshcast_bytes_from_cdn_total", "Bytes read from the CDN (seeders).", nil, nil)
	descChunkBytesCDN  = prometheus.NewDesc("meshcast_chunk_bytes_from_cdn_total", "Chunk body bytes fetched from the CDN (seeders).", nil, nil)
	descBytesFromPeers = prometheus.NewDesc("meshcast_bytes_from_peers_total", "Verified chunk bytes received from peers.", nil, nil)
	descChunksFromPeer = prometheus.NewDesc("meshcast_chunks_from_peers_total", "Verified chunks received from peers.", nil, nil)
	descBytesServed    = prometheus.NewDesc("meshcast_bytes_served_total", "Chunk bytes sent to peers.", nil, nil)
	descChunksServed   = prometheus.NewDesc("meshcast_chunks_served_total", "Chunks sent to peers.", nil, nil)
	descDuplicate      = prometheus.NewDesc("meshcast_duplicate_bytes_total", "Chunk bytes received that were already held.", nil, nil)
	descBad            = prometheus.NewDesc("meshcast_bad_bytes_total", "Chunk bytes received that did not verify.", nil, nil)
	descBans           = prometheus.NewDesc("meshcast_peer_bans_total", "Peers banned for bad chunks.", nil, nil)
	descPeers          = prometheus.NewDesc("meshcast_peers", "Connected peers.", nil, nil)
	descPhase          = prometheus.NewDesc("meshcast_phase", "1 for the node's current phase.", []string{"phase"}, nil)
	descProgress       = prometheus.NewDesc("meshcast_release_progress_ratio", "Share of the staged release's chunks held.", nil, nil)
	descRaft           = prometheus.NewDesc("meshcast_raft_state", "1 for the seeder's Raft state.", []string{"state"}, nil)
	descTerm           = prometheus.NewDesc("meshcast_raft_term", "The Raft term the seeder knows.", nil, nil)
	descGossipHealth   = prometheus.NewDesc("meshcast_gossip_health_score", "memberlist's health score (0 is healthy).", nil, nil)
	descMembers        = prometheus.NewDesc("meshcast_site_members", "Members of the site this node sees alive.", nil, nil)
	descReleaseInfo    = prometheus.NewDesc("meshcast_release_info", "1 for the release that runs (state running) and the one staged beside it (state: its phase).", []string{"name", "version", "state"}, nil)
	descActivations    = prometheus.NewDesc("meshcast_activations_total", "Activations and rollbacks on this node, by outcome.", []string{"outcome"}, nil)
	descRolloutState   = prometheus.NewDesc("meshcast_rollout_state", "1 for the state of the site's rollout of its target.", []string{"state"}, nil)
	descRolloutWave    = prometheus.NewDesc("meshcast_rollout_wave", "The wave of the site's rollout that is open (the number of waves once done).", nil, nil)
	descRolloutTime    = prometheus.NewDesc("meshcast_rollout_duration_seconds", "Time from every member verified (the rollout's start) to its end, of the target's rollout once it ended.", nil, nil)
)

var rolloutStates = []deploy.RolloutState{deploy.RolloutStaged, deploy.RolloutWaveOpen, deploy.RolloutDone, deploy.RolloutRolledBack,
	deploy.RolloutFailed, deploy.RolloutPaused, deploy.RolloutAborted}

var phases = []deploy.Phase{deploy.PhaseIdle, deploy.PhaseFetching, deploy.PhaseVerified, deploy.PhaseActivating,
	deploy.PhaseActive, deploy.PhaseHealthy, deploy.PhaseFailed, deploy.PhaseRolledBack}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBytesFromCDN, descChunkBytesCDN, descBytesFromPeers, descChunksFromPeer, descBytesServed,
		descChunksServed, descDuplicate, descBad, descBans, descPeers, descPhase, descProgress, descRaft, descTerm, descGossipHealth, descMembers,
		descReleaseInfo, descActivations, descRolloutState, descRolloutWave, descRolloutTime} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Status()
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descBytesFromCDN, st.BytesFromCDN)
	counter(descChunkBytesCDN, st.ChunkBytesFromCDN)
	counter(descBytesFromPeers, st.Exchange.Received)
	counter(descChunksFromPeer, st.Exchange.ReceivedCount)
	counter(descBytesServed, st.Exchange.Served)
	counter(descChunksServed, st.Exchange.ServedCount)
	counter(descDuplicate, st.Exchange.Duplicate)
	counter(descBad, st.Exchange.Bad)
	counter(descBans, st.Exchange.Bans)
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(st.Peers))
	for _, p := range phases {
		v := 0.0
		if st.Phase == p {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descPhase, prometheus.GaugeValue, v, p.String())
	}
	progress := 0.0
	if st.Total > 0 {
		progress = float64(st.Have) / float64(st.Total)
	}
	ch <- prometheus.MustNewConstMetric(descProgress, prometheus.GaugeValue, progress)
	collectRelease(ch, st)
	if s := st.SiteView; s != nil {
		collectRollout(ch, s)
		if s.Raft != "" {
			for _, r := range []string{"leader", "follower", "candidate"} {
				v := 0.0
				if s.Raft == r {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descRaft, prometheus.GaugeValue, v, r)
			}
			ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(s.Term))
		}
		ch <- prometheus.MustNewConstMetric(descGossipHealth, prometheus.GaugeValue, float64(s.GossipHealth))
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(len(s.Members)))
	}
}

// collectRelease reports the running and staged releases and the
// activation outcomes.
func collectRelease(ch chan<- prometheus.Metric, st Status) {
	if !st.Running.IsZero() {
		ch <- prometheus.MustNewConstMetric(descReleaseInfo, prometheus.GaugeValue, 1, st.Running.Name, st.Running.Version, "running")
	}
	if !st.Release.IsZero() && st.Release.Version != st.Running.Version {
		ch <- prometheus.MustNewConstMetric(descReleaseInfo, prometheus.GaugeValue, 1, st.Release.Name, st.Release.Version, st.Phase.String())
	}
	for outcome, n := range st.Activations {
		ch <- prometheus.MustNewConstMetric(descActivations, prometheus.CounterValue, float64(n), outcome)
	}
}

// collectRollout reports the site's rollout of its target.
func collectRollout(ch chan<- prometheus.Metric, s *SiteStatus) {
	if s.RolloutState == "" {
		return
	}
	for _, state := range rolloutStates {
		v := 0.0
		if s.RolloutState == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descRolloutState, prometheus.GaugeValue, v, string(state))
	}
	if r := s.Rollout; r != nil {
		ch <- prometheus.MustNewConstMetric(descRolloutWave, prometheus.GaugeValue, float64(r.Wave))
		if !r.EndedAt.IsZero() && !r.StartedAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descRolloutTime, prometheus.GaugeValue, r.EndedAt.Sub(r.StartedAt).Seconds())
		}
	}
}
