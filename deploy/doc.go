// Package deploy holds isolate-bot's deployment files: the container image
// (Dockerfile), Docker Compose, Kubernetes manifests and the Slack app
// manifest. It has no Go code of its own; its tests check that those files
// parse, agree with each other and with the code (slash commands, scopes,
// configuration variables, ports, timeouts), and keep the security settings.
package deploy
