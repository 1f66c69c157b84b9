// Package api is a node's local HTTP API, shared by the daemons (which
// serve it), `meshcast status` and `meshcast seeder remove` (which call
// it); the operator's dashboard, not built yet, is to share it too:
//
//	GET  /v1/status                  the node's Status, JSON
//	POST /v1/seeders/remove?id=PEER  remove a dead seeder from the site's Raft (ask the leader)
//	GET  /metrics                    Prometheus text: the node's figures, Go and process metrics
//
// Nouns:
//   - Status: what a node reports about itself and, in SiteView, what it
//     knows of its site (SiteStatus, one MemberStatus per member).
//   - Node: what the Handler needs of a node (mesh.Node has it).
//   - Client: the other end, over TCP or a unix socket ("unix:/path").
//
// Guarantees: the Handler only reads the node, except for the one POST;
// every error it answers is a status code with a one-line text reason;
// the Client bounds what it reads of an answer and names the address it
// asked in its errors. The JSON field names of Status are the API: a
// change of meaning gets a new path (/v2/…), an addition does not.
package api
