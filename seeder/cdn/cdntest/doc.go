// Package cdntest is test support for the CDN client and for everything that
// fetches releases: a signed origin in a temporary directory (NewOrigin) that
// publishes real releases through content/origin, the development origin
// (devserver.Server) serving it on loopback (Serve, ServeTLS) with failures
// to inject (Faults) and every request recorded if asked (RequestLog), a client configuration that retries quickly (ClientConfig),
// a throwaway PKI for HTTPS with client certificates (NewPKI), a small
// deterministic tree to publish (WriteTree, Mutate) and the checks a test
// makes on what a fetch left behind (RequireSameTree, CheckStore).
//
// Every helper takes a testing.TB, fails the test on a setup error, and
// registers its own cleanup: servers are stopped and waited for, clients
// release their connections, temporary mounts are unmounted. Production code
// must not import cdntest.
package cdntest
