// Package deploy holds veil's deployment files: the Kubernetes manifests
// (kubernetes/), the Grafana dashboard (grafana/), the Vault policies
// (vault/) and example configs (examples/). It has no code; its tests check
// that the manifests decode into the Kubernetes API types and follow the
// sidecar's rules, and that the dashboard queries only metrics veil exports.
package deploy
