// Package wire is the shared vocabulary of callflow: the 8x8 Voice webhook
// events it receives, the callflow actions it answers with, the request a
// decider is asked, and the record written to JetStream for every webhook.
//
// It has no dependencies outside the standard library, so the ingestor, the
// deciders and the archiver import it and never each other. Everything that
// crosses a process boundary is parsed, validated and encoded here.
package wire
