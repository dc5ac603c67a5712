// Package ingest is the webhook side of callflow: a fasthttp server that
// takes 8x8's voice webhooks on POST /vca, asks the deciders what to do with
// each call (through a circuit breaker that falls back to a polite say and
// hangup), records every webhook with its decision in JetStream, and only
// then answers.
package ingest
